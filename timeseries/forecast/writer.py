"""``lrnn predict`` output: a callback that writes the forecasts of ``Forecaster.predict_step`` as CSV."""

import csv
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter


class ForecastCSVWriter(BasePredictionWriter):
    """Writes one row per window and forecast step: ``window, date, step, <target>..., <target>_true...``.

    ``window`` is the window's number within the data module's ``predict_split``, ``date`` the forecast step's
    date (ISO 8601), ``step`` 1 .. horizon; values are in the file's units; the ``_true`` columns appear when the
    truth is known (not for ``predict_split="future"``). Rows are appended batch by batch.

    Args:
        path: the CSV file; None writes ``forecasts.csv`` in the trainer's log folder.
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.path = path
        self.written: Path | None = None

    def output_path(self, trainer: L.Trainer) -> Path:
        """Where this run writes (the ``path`` argument, else ``<log_dir>/forecasts.csv``)."""
        if self.path is not None:
            return Path(self.path)
        if trainer.log_dir is None:
            raise ValueError("ForecastCSVWriter: no path given and the trainer has no log folder")
        return Path(trainer.log_dir) / "forecasts.csv"

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.written = None

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        data = trainer.datamodule
        names = list(data.target_names)
        forecast = prediction["forecast"].detach().cpu().numpy()
        truth = prediction.get("truth")
        truth = None if truth is None else truth.detach().cpu().numpy()
        if self.written is None:
            self.written = self.output_path(trainer)
            self.written.parent.mkdir(parents=True, exist_ok=True)
            header = ["window", "date", "step", *names, *([f"{n}_true" for n in names] if truth is not None else [])]
            with open(self.written, "w", newline="") as f:
                csv.writer(f).writerow(header)
        with open(self.written, "a", newline="") as f:
            out = csv.writer(f)
            for b, window in enumerate(prediction["index"].tolist()):
                dates = np.datetime_as_string(data.horizon_dates(window), unit="s")
                for step, date in enumerate(dates):
                    values = [f"{v:.9g}" for v in forecast[b, step]]
                    if truth is not None:
                        values += [f"{v:.9g}" for v in truth[b, step]]
                    out.writerow([window, date.replace("T", " "), step + 1, *values])
