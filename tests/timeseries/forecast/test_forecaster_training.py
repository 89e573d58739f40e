"""Training: the TPGN recipe for two epochs on a slice of ETTh1 (metrics, original units, schedule, plot),
``lrnn predict`` writing forecasts as CSV, resuming from the last checkpoint, mismatch errors, the plot helper."""

import csv
import math
import sys
import warnings

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lrnn.configs import recipe_path
from lrnn.timeseries.forecast import (
    TPGN,
    ForecastCSVWriter,
    ForecastDataModule,
    Forecaster,
    LSSLForecaster,
    plot_forecast,
)

from lrnn.cli import LrnnCLI, main

RECIPE = "timeseries/tpgn_etth1_168.yaml"


def recipe_args(etth1, save_dir, *extra: str) -> list[str]:
    return [
        "--config",
        str(recipe_path(RECIPE)),
        f"--data.init_args.path={etth1}",
        f"--trainer.logger.init_args.save_dir={save_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def fitted(etth1, tmp_path_factory):
    """The TPGN ETTh1 recipe fitted for two epochs of 40 batches, then tested on 10 batches."""
    save_dir = tmp_path_factory.mktemp("runs")
    extra = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=40", "--trainer.limit_val_batches=10"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = LrnnCLI(args=recipe_args(etth1, save_dir, *extra, "--trainer.limit_test_batches=10"), run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return cli.trainer, cli.model, cli.datamodule, metrics, save_dir


def test_recipe_fits_two_epochs_on_a_slice(fitted):
    trainer, model, data, metrics, _ = fitted
    assert trainer.current_epoch == 2 and trainer.global_step == 80
    first_batches = [batch["y"] for _, batch in zip(range(10), data.test_dataloader(), strict=False)]
    zero_forecast = torch.cat(first_batches).square().mean()
    assert metrics["test/mse"] < 0.5 * zero_forecast  # it learned something in 80 steps
    std = float(data.scaler.std[-1])  # univariate: original-unit errors are the scaled ones times the std
    assert metrics["test/mse_original"] == pytest.approx(metrics["test/mse"] * std**2, rel=1e-4)
    assert metrics["test/mae_original"] == pytest.approx(metrics["test/mae"] * std, rel=1e-4)
    log_dir = trainer.logger.log_dir
    with open(f"{log_dir}/metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    val = [float(row["val/mse"]) for row in rows if row.get("val/mse")]
    lrs = [float(row["lr-Adam/default"]) for row in rows if row.get("lr-Adam/default")]
    assert len(val) == 2 and lrs == [1e-3, 1e-3]  # type4: the first two epochs at the initial rate
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(9e-4)  # the third would run at 0.9x
    assert trainer.checkpoint_callback.best_model_path.endswith(".ckpt")
    with open(f"{log_dir}/forecast.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_lrnn_predict_writes_forecasts_in_file_units(fitted, etth1, etth1_raw, tmp_path, monkeypatch):
    trainer, model, data, _, save_dir = fitted
    ckpt = trainer.checkpoint_callback.last_model_path
    out = tmp_path / "forecasts.csv"
    monkeypatch.setattr(sys, "argv", ["lrnn"])
    extra = [f"--ckpt_path={ckpt}", "--trainer.limit_predict_batches=2", f"--trainer.callbacks.init_args.path={out}"]
    main(["predict", *recipe_args(etth1, save_dir, *extra)])  # the recipe's last callback is the CSV writer
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["window", "date", "step", "OT", "OT_true"]
    assert len(rows) - 1 == 2 * 32 * 168
    raw_ot = dict(zip(etth1_raw["date"], etth1_raw["OT"], strict=True))
    first = rows[1]
    assert first[:3] == ["0", etth1_raw["date"][13936], "1"]  # the first test forecast starts at the test border
    for row in rows[1::997]:  # the truth column is the file's value at that date
        assert float(row[4]) == pytest.approx(raw_ot[row[1]], rel=1e-5, abs=1e-5)
    window = data.splits["test"][0]
    model = Forecaster.load_from_checkpoint(ckpt, model=TPGN(168, 168, 1, 4, 24, 2, True)).eval()
    model.target_mean, model.target_std = data.target_scale()
    batch = {key: value.unsqueeze(0) for key, value in window.items()}
    with torch.no_grad():
        expected = model.to_original(model(batch))[0, :, 0]
    written = torch.tensor([float(row[3]) for row in rows[1:169]])
    torch.testing.assert_close(written, expected, rtol=1e-6, atol=1e-5)


class Interrupt(Callback):
    """Raises in the middle of epoch ``epoch``, as a crash or a killed job would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == 3:
            raise RuntimeError("interrupted")


def lssl_run(ckpt_dir, callbacks=(), **fit_args) -> tuple[L.Trainer, Forecaster]:
    L.seed_everything(7)
    model = LSSLForecaster(48, 24, n_channels=3, n_time_features=4, d_model=8, n_layers=2, state_size=8, dropout=0.2)
    module = Forecaster(model, group_lr={"transition": 1e-4, "timescale": 3e-3}, step_seed=11)
    data = ForecastDataModule(path=None, features="M", input_len=48, horizon=24, synthetic_steps=900, batch_size=16)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, monitor="val/mse", save_last=True)
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        callbacks=[checkpoint, *callbacks],
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data, **fit_args)
    return trainer, module


def test_resume_from_last_checkpoint_repeats_the_uninterrupted_run(tmp_path):
    _, straight = lssl_run(tmp_path / "straight")
    with pytest.raises(RuntimeError, match="interrupted"):
        lssl_run(tmp_path / "resumed", callbacks=[Interrupt(epoch=2)])
    trainer, resumed = lssl_run(tmp_path / "resumed", ckpt_path="last")
    assert trainer.current_epoch == 3
    groups = {group["name"]: group["lr"] for group in trainer.optimizers[0].param_groups}
    assert groups == pytest.approx({"default": 8.1e-4, "transition": 8.1e-5, "timescale": 2.43e-3})
    for (name, want), got in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(got, want), name


def test_mismatched_model_and_data_and_bad_arguments_are_refused(tmp_path):
    data = ForecastDataModule(path=None, input_len=48, horizon=24, synthetic_steps=600)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match=r"the model does not fit the data \(horizon: model 48, data 24\)"):
        trainer.fit(Forecaster(TPGN(48, 48, n_channels=1, period=24)), datamodule=data)
    with pytest.raises(TypeError, match="model must be a ForecastModel"):
        Forecaster(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"group_lr names \['dt'\]"):
        Forecaster(LSSLForecaster(48, 24, d_model=4, n_layers=1, state_size=4), group_lr={"dt": 1e-3})


def test_plot_forecast(tmp_path):
    history, forecast = np.sin(np.arange(48.0)), np.cos(np.arange(12.0))
    path = plot_forecast(history, forecast, forecast + 0.1, tmp_path / "one.png")
    assert path.stat().st_size > 1000
    path = plot_forecast(torch.zeros(48, 2), torch.ones(12, 2), None, tmp_path / "two.png", names=["a", "b"])
    assert path.is_file()
    with pytest.raises(ValueError, match="need the same channels"):
        plot_forecast(np.zeros((48, 2)), np.zeros((12, 3)), None, tmp_path / "bad.png")


def test_writer_forecasts_past_the_end_of_the_series(tmp_path):
    data = ForecastDataModule(
        features="M", target="s0", input_len=48, horizon=12, synthetic_steps=600, predict_split="future"
    )
    module = Forecaster(TPGN(48, 12, n_channels=3, n_time_features=4, period=24, d_model=4))
    out = tmp_path / "future.csv"
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[ForecastCSVWriter(str(out))],
    )
    trainer.fit(module, datamodule=data)
    trainer.predict(module, datamodule=data, return_predictions=False)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["window", "date", "step", "s1", "s2", "s0"]  # no truth columns: the future is unknown
    last = data.load().dates[-1]
    assert [row[1] for row in rows[1:]] == [str(last + np.timedelta64(k, "h")).replace("T", " ") for k in range(1, 13)]
    assert all(math.isfinite(float(value)) for row in rows[1:] for value in row[3:])
