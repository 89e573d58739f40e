"""LightningModule for dynamical-systems reconstruction: forced one-step MSE training, measures of free orbits."""

import math
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from .forcing import ALPHA_ESTIMATORS, SOLVERS, anneal_alpha, estimate_alpha, forced_rollout
from .metrics import power_spectrum_error, prediction_error, state_space_divergence
from .models import PiecewiseLinearRNN
from .subregions import plot_symbolic_code, symbolic_code

FORCINGS = ("sparse", "gtf")


class DSRModule(L.LightningModule):
    """Trains a piecewise-linear RNN on subsequences under teacher forcing (Brenner et al. 2024, Hess et al. 2023).

    Loss: ``mean (readout(z_t) − x_t)²`` over ``t = 1 .. T-1`` and the batch, where ``z_t`` are the predictions
    of :func:`~lrnn.timeseries.dsr.forcing.forced_rollout` driven by the (noisy) inputs and ``x_t`` the clean
    targets. Optimiser RAdam; the learning rate decays exponentially from ``lr_start`` to ``lr_end`` over all
    training steps. Batches are ``(inputs [B, T, N], targets [B, T, N])`` (``DSRDataModule``).

    Validation (one batch: the ground truth ``x [1, L, N]``): a free-running orbit of ``L + L // 4`` steps from
    ``init_state(x_0)``, the first ``L // 4`` dropped, is compared with ``x``: logs ``val/D_stsp`` (``n_bins``),
    ``val/D_H`` (``psd_smoothing``) and ``val/PE`` (``pe_steps``-step prediction error); a diverged orbit logs
    ``inf``. Set how often with ``trainer.check_val_every_n_epoch``.

    Args:
        model: the DSR model (``ALRNN``, ``PLRNN``, ``ShallowPLRNN``, ``ClippedShallowPLRNN``).
        forcing: ``"sparse"`` (identity teacher forcing every ``tau`` steps) or ``"gtf"`` (generalised).
        tau: forcing interval of sparse forcing.
        alpha: GTF weight; the starting value when ``alpha_method`` is set (the papers start at 1).
        alpha_method: None for constant α, else the estimator of ``α* = max(0, 1 − 1/G)``
            (``"product_upper_bound"``, ``"batch_maximum"``, ``"arithmetic_mean"``) for annealed GTF.
        alpha_every: batches between α updates (annealed GTF).
        alpha_gamma: annealing factor γ.
        solver: ``"loop"`` or ``"newton"`` (``newton_scan``) for the forced trajectory.
        lr_start, lr_end: learning rate at the first and the last step.
        n_bins: bins per dimension of D_stsp.
        psd_smoothing: σ of the power-spectrum smoothing of D_H.
        pe_steps: horizon of PE.
    """

    def __init__(
        self,
        model: PiecewiseLinearRNN,
        forcing: str = "sparse",
        tau: int = 16,
        alpha: float = 1.0,
        alpha_method: str | None = None,
        alpha_every: int = 5,
        alpha_gamma: float = 0.999,
        solver: str = "loop",
        lr_start: float = 1e-3,
        lr_end: float = 1e-5,
        n_bins: int = 30,
        psd_smoothing: float = 20.0,
        pe_steps: int = 20,
    ) -> None:
        super().__init__()
        if not isinstance(model, PiecewiseLinearRNN):
            raise TypeError(f"model must be a PiecewiseLinearRNN, got {type(model).__name__}")
        if forcing not in FORCINGS:
            raise ValueError(f"forcing must be one of {FORCINGS}, got {forcing!r}")
        if alpha_method is not None and alpha_method not in ALPHA_ESTIMATORS:
            raise ValueError(f"alpha_method must be None or one of {ALPHA_ESTIMATORS}, got {alpha_method!r}")
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if not 0 < lr_end <= lr_start:
            raise ValueError(f"need 0 < lr_end <= lr_start, got lr_start={lr_start}, lr_end={lr_end}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def _forcing_args(self) -> dict[str, Any]:
        if self.hparams.forcing == "sparse":
            return {"tau": self.hparams.tau}
        return {"alpha": float(self.alpha)}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        hp = self.hparams
        pred, z_prev = forced_rollout(self.model, inputs, solver=hp.solver, return_forced=True, **self._forcing_args())
        loss = F.mse_loss(self.model.readout(pred), targets[:, 1:])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        if hp.forcing == "gtf" and hp.alpha_method is not None and self.global_step % hp.alpha_every == 0:
            with torch.no_grad():
                rows = z_prev.detach().reshape(-1, self.model.M)
                jac = self.model.jacobian(rows).view(*z_prev.shape, self.model.M)
                estimate = estimate_alpha(jac, hp.alpha_method)
                self.alpha.fill_(anneal_alpha(float(self.alpha), estimate, hp.alpha_gamma))
        if hp.forcing == "gtf":
            self.log("train/alpha", float(self.alpha), on_step=True, on_epoch=False)
        return loss

    @torch.no_grad()
    def free_run(self, x: torch.Tensor) -> torch.Tensor:
        """Observations ``[L, N]`` of a free orbit of ``L + L // 4`` steps from ``x [L, N]``'s first point, the
        first ``L // 4`` dropped."""
        length = x.shape[0]
        z0 = self.model.init_state(x[:1])
        orbit = self.model.generate(z0, length + length // 4)[0, length // 4 :]
        return self.model.readout(orbit)

    def _log_measures(self, x: torch.Tensor, split: str) -> None:
        """Log ``<split>/D_stsp``, ``<split>/D_H`` and ``<split>/PE`` of a free orbit against ``x [L, N]``."""
        hp = self.hparams
        x_gen = self.free_run(x)
        x_np, gen_np = x.double().cpu().numpy(), x_gen.double().cpu().numpy()
        if np.isfinite(gen_np).all():
            d_stsp = state_space_divergence(x_np, gen_np, hp.n_bins)
            d_h = power_spectrum_error(x_np, gen_np, hp.psd_smoothing)
            pe = prediction_error(
                self.model.step, x, hp.pe_steps, init=self.model.init_state, observe=self.model.readout
            )
        else:
            d_stsp = d_h = pe = math.inf
        values = {f"{split}/D_stsp": d_stsp, f"{split}/D_H": d_h, f"{split}/PE": pe}
        self.log_dict({k: math.inf if math.isnan(v) else float(v) for k, v in values.items()}, prog_bar=True)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._log_measures(batch[0], "val")

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        """The validation measures as ``test/*``, plus ``test/subregions``: the linear subregions a free orbit of
        the length of ``x`` visits; its symbolic code is drawn to ``symbolic_code.png`` in the logger's folder."""
        x = batch[0]
        self._log_measures(x, "test")
        with torch.no_grad():
            code, orbit = symbolic_code(self.model, self.model.init_state(x[:1]), x.shape[0], x.shape[0] // 4)
        self.log("test/subregions", float(code.bits.shape[0]))
        if self.trainer.is_global_zero and self.logger is not None and self.logger.log_dir is not None:
            plot_symbolic_code(self.model.readout(orbit), code, f"{self.logger.log_dir}/symbolic_code.png")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.RAdam(self.parameters(), lr=hp.lr_start)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        ratio = hp.lr_end / hp.lr_start

        def factor(step: int) -> float:
            return ratio ** (min(step, total - 1) / max(total - 1, 1))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
