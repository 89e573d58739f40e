"""LightningModule for dynamical-systems reconstruction: forced one-step MSE training, measures of free orbits."""

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from ...metrics import ResetMetricsOnEvaluation
from .forcing import ALPHA_ESTIMATORS, SOLVERS, anneal_alpha, estimate_alpha, forced_rollout
from .metric_classes import PowerSpectrumError, PredictionError, StateSpaceDivergence
from .metrics import n_step_predictions
from .models import PiecewiseLinearRNN
from .plots import plot_reconstruction, plot_symbolic_code
from .subregions import symbolic_code

FORCINGS = ("sparse", "gtf")


class DSRModule(ResetMetricsOnEvaluation, L.LightningModule):
    """Trains a piecewise-linear RNN on subsequences under teacher forcing (Brenner et al. 2024, Hess et al. 2023).

    Loss: ``mean (readout(z_t) − x_t)²`` over ``t = 1 .. T-1`` and the batch, where ``z_t`` are the predictions
    of :func:`~lrnn.timeseries.dsr.forcing.forced_rollout` driven by the (noisy) inputs and ``x_t`` the clean
    targets. Optimiser RAdam; the learning rate decays exponentially from ``lr_start`` to ``lr_end`` over all
    training steps. Batches are ``(inputs [B, T, N], targets [B, T, N])`` (``DSRDataModule``).

    Validation (one batch: the ground truth ``x [1, L, N]``): a free-running orbit of ``L + ⌊transient · L⌋``
    states from ``init_state(x_0)`` (row 0 is ``z_0``), the first ``⌊transient · L⌋`` dropped, is compared with
    ``x`` through the torchmetrics classes of
    ``metric_classes``: logs ``val/D_stsp`` (``n_bins``), ``val/D_H`` (``psd_smoothing``), ``val/PE``
    (``pe_steps``-step prediction error) and ``val/subregions`` (the linear subregions the orbit visits); a NaN,
    from a diverged orbit, is logged as ``inf``. It also draws ``reconstruction.png`` (true vs generated attractor
    and power spectra) and ``symbolic_code.png`` (the orbit coloured by subregion, the transition graph) into the
    logger's folder, overwriting them at each validation. Set how often with ``trainer.check_val_every_n_epoch``;
    keep the checkpoint of the lowest D_stsp with a ``ModelCheckpoint`` monitoring ``val/D_stsp`` (mode ``min``).
    Testing does the same under ``test/``.

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
        transient: fraction of ``L`` dropped from the start of the validation orbit: 0.25 as GTF-shPLRNN's
            ``evaluate_run``; 0 as ALRNN-DSR's ``train_!`` (the orbit starts at ``x_0`` itself and its ``L``
            points, ``L`` the whole training series, are what the AL-RNN paper's D_stsp/D_H were computed on).
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
        transient: float = 0.25,
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
        if not 0 <= transient:
            raise ValueError(f"transient must be a fraction >= 0 of the evaluation length, got {transient!r}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))
        self.measures = nn.ModuleDict(
            {
                "D_stsp": StateSpaceDivergence(n_bins),
                "D_H": PowerSpectrumError(psd_smoothing),
                "PE": PredictionError(pe_steps),
            }
        )

    def setup(self, stage: str) -> None:
        """Check the data module's series against the model (``N``) and the measures (their minimum length)."""
        data = self.trainer.datamodule
        if not hasattr(data, "eval_series"):
            return
        series = data.eval_series
        if series.shape[1] != self.model.N:
            raise ValueError(
                f"the data have N = {series.shape[1]} dimensions but the model reads out N = {self.model.N}; "
                f"set the model's N to {series.shape[1]}"
            )
        hp = self.hparams
        needed = max(hp.pe_steps + 1, 4, 2 * math.floor(4 * hp.psd_smoothing))  # D_H: T // 2 + 1 > 4σ frequencies
        if series.shape[0] < needed:
            raise ValueError(
                f"the evaluation series has {series.shape[0]} points; the measures need at least {needed} "
                f"(PE over pe_steps = {hp.pe_steps}, D_H smoothed over psd_smoothing = {hp.psd_smoothing} bins)"
            )

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
    def _measure(self, x: torch.Tensor, split: str) -> None:
        """Update the measures with a free orbit against ``x [L, N]``; log the used subregions; draw the plots."""
        hp = self.hparams
        length = x.shape[0]
        drop = int(length * hp.transient)
        code, orbit = symbolic_code(self.model, self.model.init_state(x[:1]), length, drop)
        x_gen = self.model.readout(orbit)
        self.measures["D_stsp"].update(x, x_gen)
        self.measures["D_H"].update(x, x_gen)
        predictions = n_step_predictions(
            self.model.step, x, hp.pe_steps, init=self.model.init_state, observe=self.model.readout
        )
        self.measures["PE"].update(predictions, x)
        self.log(f"{split}/subregions", float(code.bits.shape[0]))
        log_dir = self.logger.log_dir if self.logger is not None else None
        if self.trainer.is_global_zero and log_dir is not None and torch.isfinite(x_gen).all():
            title = f"{split}, epoch {self.current_epoch}"
            plot_reconstruction(x, x_gen, f"{log_dir}/reconstruction.png", hp.psd_smoothing, title)
            if self.model.N >= 2:
                plot_symbolic_code(x_gen, code, f"{log_dir}/symbolic_code.png", title)

    def _log_measures(self, split: str) -> None:
        """Log ``<split>/D_stsp``, ``<split>/D_H``, ``<split>/PE`` (NaN as ``inf``) and reset the measures."""
        values = {f"{split}/{name}": float(measure.compute()) for name, measure in self.measures.items()}
        self.log_dict({key: math.inf if math.isnan(v) else v for key, v in values.items()}, prog_bar=True)
        for measure in self.measures.values():
            measure.reset()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._measure(batch[0], "val")

    def on_validation_epoch_end(self) -> None:
        self._log_measures("val")

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._measure(batch[0], "test")

    def on_test_epoch_end(self) -> None:
        self._log_measures("test")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.RAdam(self.parameters(), lr=hp.lr_start)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        ratio = hp.lr_end / hp.lr_start

        def factor(step: int) -> float:
            return ratio ** (min(step, total - 1) / max(total - 1, 1))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
