"""LightningModule for forecasting: MSE training of any ``ForecastModel``, MSE/MAE in scaled and original units."""

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError

from ...metrics import ResetMetricsOnEvaluation
from .base import ForecastModel
from .data import ForecastDataModule
from .plots import plot_forecast


def forecast_metrics() -> nn.ModuleDict:
    """MSE and MAE in scaled units (``mse``, ``mae``) and in the file's units (``mse_original``, ``mae_original``)."""
    return nn.ModuleDict(
        {
            "mse": MeanSquaredError(),
            "mae": MeanAbsoluteError(),
            "mse_original": MeanSquaredError(),
            "mae_original": MeanAbsoluteError(),
        }
    )


class Forecaster(ResetMetricsOnEvaluation, L.LightningModule):
    """Trains a ``ForecastModel`` on ``ForecastDataModule`` batches with the MSE of the scaled forecast.

    Optimiser Adam; the rate of epoch ``e`` (from 0) is ``lr · lr_decay^max(0, e - lr_decay_delay)``. With
    ``lr_decay_delay = 1`` this is the TPGN/WITRAN harness's ``type4`` schedule (``lr · 0.9^(epoch - 1)`` for
    epochs counted from 1: the first two epochs both run at ``lr``). Parameter groups the model names in
    ``param_groups()`` (LSSL: ``timescale``, ``transition``) get their rate from ``group_lr`` when listed there.

    Logs ``train/loss``; ``val/mse``, ``val/mae`` (scaled units: what both protocols report) and
    ``val/mse_original``, ``val/mae_original`` (the file's units); the same under ``test/``. With ``features="MS"``
    the last output channel is the forecast. ``predict_step`` returns ``{"index", "forecast", "truth"}``, the
    latter two in the file's units (``truth`` only when the window's future is known). After ``test``, the first
    test window is drawn to ``forecast.png`` in the logger's folder.

    Args:
        model: the forecaster (``TPGN``, ``LSSLForecaster``, any ``ForecastModel``).
        lr: Adam learning rate.
        lr_decay: factor per epoch.
        lr_decay_delay: epochs before the decay starts counting (see above).
        group_lr: learning rate per named parameter group of the model, e.g. ``{"transition": 1e-4}``.
        step_seed: when set, the global torch generator is re-seeded from ``(step_seed, global step)`` before every
            training step, so that dropout draws do not depend on what ran before: a run resumed from a checkpoint
            then repeats the uninterrupted run exactly.
    """

    def __init__(
        self,
        model: ForecastModel,
        lr: float = 1e-3,
        lr_decay: float = 0.9,
        lr_decay_delay: int = 1,
        group_lr: dict[str, float] | None = None,
        step_seed: int | None = 0,
    ) -> None:
        super().__init__()
        if not isinstance(model, ForecastModel):
            raise TypeError(f"model must be a ForecastModel, got {type(model).__name__}")
        if not lr > 0 or not 0 < lr_decay <= 1:
            raise ValueError(f"need lr > 0 and 0 < lr_decay <= 1, got lr={lr}, lr_decay={lr_decay}")
        unknown = set(group_lr or {}) - set(model.param_groups())
        if unknown:
            raise ValueError(f"group_lr names {sorted(unknown)}, the model's groups are {sorted(model.param_groups())}")
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.metrics = nn.ModuleDict({"val": forecast_metrics(), "test": forecast_metrics()})
        self.target_mean = self.target_std = None
        self._first_test_window: dict[str, torch.Tensor] | None = None

    def setup(self, stage: str) -> None:
        """Check that the data module's windows fit the model and take its target scaling."""
        data = self.trainer.datamodule
        if not isinstance(data, ForecastDataModule):
            raise TypeError(f"Forecaster needs a ForecastDataModule, got {type(data).__name__}")
        data.setup(stage)
        model, hp = self.model, data.hparams
        expected = {
            "input_len": (model.input_len, hp.input_len),
            "horizon": (model.horizon, hp.horizon),
            "n_channels": (model.n_channels, len(data.channel_names)),
            "n_time_features": (model.n_time_features, data.n_time_features),
        }
        wrong = {name: pair for name, pair in expected.items() if pair[0] != pair[1]}
        if wrong:
            detail = ", ".join(f"{name}: model {m}, data {d}" for name, (m, d) in wrong.items())
            raise ValueError(f"the model does not fit the data ({detail}); set the model's arguments to match")
        self.target_mean, self.target_std = data.target_scale()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The forecast ``[B, horizon, C_target]`` of a batch, in scaled units."""
        if self.target_mean is None:
            raise RuntimeError("Forecaster has no target scaling yet: run it in a Trainer with a ForecastDataModule")
        pred = self.model(batch["x"], batch["x_mark"], batch["y_mark"])
        return pred[..., -len(self.target_mean) :]

    def to_original(self, y: torch.Tensor) -> torch.Tensor:
        """Scaled target values ``[..., C_target]`` in the file's units."""
        return y * self.target_std.to(y) + self.target_mean.to(y)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = F.mse_loss(self(batch), batch["y"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def _evaluate(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        """Update and log the four metrics of ``split``; returns the scaled forecast."""
        pred, truth = self(batch), batch["y"]
        scaled = (pred.flatten(), truth.flatten())  # flat copies: torchmetrics views its inputs
        original = (self.to_original(pred).flatten(), self.to_original(truth).flatten())
        for name, metric in self.metrics[split].items():
            metric.update(*(original if name.endswith("_original") else scaled))
            self.log(f"{split}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "mse")
        return pred

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        pred = self._evaluate(batch, "test")
        if batch_idx == 0:
            self._first_test_window = {"history": batch["x"][0], "forecast": pred[0], "truth": batch["y"][0]}

    def on_test_epoch_end(self) -> None:
        window, logger = self._first_test_window, self.logger
        if window is None or not self.trainer.is_global_zero or logger is None or logger.log_dir is None:
            return
        n_targets = window["forecast"].shape[-1]
        history = self.to_original(window["history"][:, -n_targets:])
        forecast, truth = self.to_original(window["forecast"]), self.to_original(window["truth"])
        names = self.trainer.datamodule.target_names
        plot_forecast(history, forecast, truth, f"{logger.log_dir}/forecast.png", names=names)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        out = {"index": batch["index"], "forecast": self.to_original(self(batch))}
        if "y" in batch:
            out["truth"] = self.to_original(batch["y"])
        return out

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        if self.hparams.step_seed is not None:
            torch.manual_seed(self.hparams.step_seed * 2**32 + self.global_step)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        group_lr = hp.group_lr or {}
        grouped: set[int] = set()
        groups = []
        for name, params in self.model.param_groups().items():
            if name in group_lr and params:
                groups.append({"params": params, "lr": group_lr[name], "name": name})
                grouped |= {id(p) for p in params}
        rest = [p for p in self.parameters() if id(p) not in grouped and p.requires_grad]
        optimizer = torch.optim.Adam([{"params": rest, "name": "default"}, *groups], lr=hp.lr)

        def factor(epoch: int) -> float:
            return hp.lr_decay ** max(0, epoch - hp.lr_decay_delay)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
