"""DSR training: forcing semantics, GTF α estimation, newton_scan = loop, the data module, a recipe, learning."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lrnn.configs import recipe_path
from lrnn.timeseries.dsr.data import DSRDataModule, check_series, load_series
from lrnn.timeseries.dsr.forcing import anneal_alpha, estimate_alpha, forced_rollout, forcing_weights
from lrnn.timeseries.dsr.lit import DSRModule
from lrnn.timeseries.dsr.models import ALRNN, ClippedShallowPLRNN

from lrnn.cli import LrnnCLI

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "dsr"


def shift_model(M: int, N: int, shift: float) -> ALRNN:
    """An AL-RNN whose map is ``F(z) = z + shift`` (A = 1, W = 0, h = shift), with ``L = 0``."""
    model = ALRNN(M, 0, N).double()
    with torch.no_grad():
        model.A.fill_(1.0)
        model.W.zero_()
        model.h.fill_(shift)
        model.observation.L.zero_()
    return model


def test_sparse_forcing_emits_then_overwrites_readouts_every_tau():
    M, N, T, tau = 5, 2, 11, 3
    model = shift_model(M, N, 1.0)
    x = torch.arange(T, dtype=torch.float64).mul(10).view(1, T, 1).expand(1, T, N).clone()
    z = forced_rollout(model, x, tau=tau)
    assert z.shape == (1, T - 1, M)
    for t in range(1, T):
        last = tau * ((t - 1) // tau)  # the last forced step before t (0: the initial state)
        assert torch.allclose(z[0, t - 1, :N], x[0, last] + (t - last)), t
        assert torch.allclose(z[0, t - 1, N:], torch.full((M - N,), float(t), dtype=torch.float64)), t


def test_sparse_forcing_cuts_the_gradient_into_overwritten_units():
    model = shift_model(4, 2, 0.0)
    x = torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True)
    z = forced_rollout(model, x, tau=2)
    (grad,) = torch.autograd.grad(z[0, 4, :2].sum(), x)  # z_5 = z̃_4 = x_4 on the readouts
    expected = torch.zeros_like(x)
    expected[0, 4] = 1.0
    assert torch.equal(grad, expected)


def test_gtf_blends_every_step():
    M, N, T, alpha, h = 4, 2, 8, 0.3, 0.5
    model = shift_model(M, N, h)
    x = torch.randn(2, T, N, dtype=torch.float64)
    z = forced_rollout(model, x, alpha=alpha)
    z_tilde = model.init_state(x[:, 0])
    for t in range(1, T):
        pred = z_tilde + h
        assert torch.allclose(z[:, t - 1], pred)
        z_tilde = pred.clone()
        z_tilde[:, :N] = (1 - alpha) * pred[:, :N] + alpha * x[:, t]


def test_forcing_weights_and_bad_arguments():
    assert forcing_weights(7, tau=3).tolist() == [1, 0, 0, 1, 0, 0, 1]
    assert forcing_weights(3, alpha=0.25).tolist() == [0.25] * 3
    model = shift_model(4, 2, 0.0)
    with pytest.raises(ValueError, match="exactly one"):
        forced_rollout(model, torch.zeros(1, 5, 2, dtype=torch.float64), tau=2, alpha=0.5)
    with pytest.raises(ValueError, match="alpha must be in"):
        forced_rollout(model, torch.zeros(1, 5, 2, dtype=torch.float64), alpha=1.5)
    with pytest.raises(ValueError, match=r"x must be \[batch, T >= 2, N=2\]"):
        forced_rollout(model, torch.zeros(1, 5, 3, dtype=torch.float64), tau=2)


def test_alpha_estimate_on_a_linear_system_with_known_G():
    M, N = 4, 2
    model = ALRNN(M, 0, N).double()  # P = 0: linear, J = diag(A) + W everywhere
    with torch.no_grad():
        model.A.zero_()
        model.W.copy_(2.0 * torch.linalg.qr(torch.randn(M, M, dtype=torch.float64))[0])  # ‖J‖ = 2 at every step
    x = torch.randn(3, 20, N, dtype=torch.float64)
    _, z_prev = forced_rollout(model, x, alpha=0.5, return_forced=True)
    jac = model.jacobian(z_prev.reshape(-1, M)).view(3, 19, M, M)
    for method in ("product_upper_bound", "batch_maximum", "arithmetic_mean"):
        assert estimate_alpha(jac, method) == pytest.approx(0.5, abs=1e-12), method
    # Per-step norms 1 and 4: geometric mean 2 (α = 1/2), maximum 4 (α = 3/4); contracting: α = 0.
    J = torch.stack([torch.eye(2), 4 * torch.eye(2)]).view(1, 2, 2, 2).double()
    assert estimate_alpha(J, "product_upper_bound") == pytest.approx(0.5)
    assert estimate_alpha(J, "batch_maximum") == pytest.approx(0.75)
    assert estimate_alpha(0.5 * J[:, :1], "product_upper_bound") == 0.0


def test_alpha_annealing():
    assert anneal_alpha(1.0, 0.5, 0.999) == pytest.approx(0.9995)
    assert anneal_alpha(0.2, 0.5, 0.999) == 0.5
    alpha = 1.0
    for _ in range(5000):
        alpha = anneal_alpha(alpha, 0.1)
    assert alpha == pytest.approx(0.1 + 0.9 * 0.999**5000)


@pytest.mark.parametrize(
    "make, forcing",
    [
        (lambda: ALRNN(20, 2, 3), {"tau": 16}),
        (lambda: ALRNN(20, 2, 3), {"alpha": 0.2}),
        (lambda: ClippedShallowPLRNN(5, 30, 3, observation="affine"), {"alpha": 0.3}),
    ],
)
def test_newton_scan_solver_equals_the_loop(make, forcing):
    torch.manual_seed(0)
    model = make().double()
    x = torch.randn(4, 64, 3, dtype=torch.float64)
    loop = forced_rollout(model, x, **forcing)
    loop.square().mean().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    newton = forced_rollout(model, x, solver="newton", **forcing)
    newton.square().mean().backward()
    assert (newton - loop).abs().max() < 1e-6
    for g, p in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(p.grad, g, atol=1e-6)


def test_data_module_batches_and_errors(tmp_path):
    dm = DSRDataModule(system="rossler", n_steps=500, seq_len=30, batch_size=4, batches_per_epoch=3, noise=0.1)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    inputs, targets = batches[0]
    assert inputs.shape == targets.shape == (4, 30, 3)
    assert 0.05 < (inputs - targets).std() < 0.2
    (val,) = list(dm.val_dataloader())
    assert val.shape == (1, 500, 3)

    series = np.random.default_rng(0).standard_normal((50, 2))
    np.savetxt(tmp_path / "x.csv", series, delimiter=",")
    assert np.allclose(load_series(tmp_path / "x.csv"), series, atol=1e-6)
    series[7, 1] = series[9, 0] = np.nan
    np.save(tmp_path / "nan.npy", series)
    with pytest.raises(ValueError, match=r"nan.npy has 2 NaN/inf values \(first at row 7, column 1\)"):
        DSRDataModule(path=str(tmp_path / "nan.npy"), seq_len=10).setup("fit")
    np.save(tmp_path / "short.npy", np.zeros((20, 2)))
    with pytest.raises(ValueError, match="short.npy has 20 steps, fewer than seq_len = 200"):
        DSRDataModule(path=str(tmp_path / "short.npy")).setup("fit")
    np.save(tmp_path / "cube.npy", np.zeros((20, 2, 2)))
    with pytest.raises(ValueError, match=r"must be \[T, N\] \(or \[T\]\) with N >= 1, got shape \(20, 2, 2\)"):
        load_series(tmp_path / "cube.npy")
    with pytest.raises(ValueError, match="N >= 1, got shape \\(20, 0\\)"):
        check_series(np.zeros((20, 0)), "x")
    with pytest.raises(ValueError, match="eval_length must be None or an int >= 2"):
        DSRDataModule(eval_length=0)


def _fit(module: DSRModule, data: DSRDataModule) -> None:
    trainer = L.Trainer(max_epochs=1, limit_train_batches=1, logger=False, enable_progress_bar=False)
    trainer.fit(module, data)


def test_data_and_model_must_agree_before_training():
    data = DSRDataModule(system="rossler", n_steps=500, seq_len=30, eval_length=300)
    with pytest.raises(ValueError, match="the data have N = 3 dimensions but the model reads out N = 2"):
        _fit(DSRModule(ALRNN(10, 2, 2)), data)
    short = DSRDataModule(system="rossler", n_steps=500, seq_len=30, eval_length=100)
    with pytest.raises(ValueError, match="evaluation series has 100 points; the measures need at least 160"):
        _fit(DSRModule(ALRNN(10, 2, 3)), short)


@pytest.mark.parametrize(
    ("recipe", "data_args"),
    [
        ("alrnn_lorenz63", ["--data.init_args.n_steps=3000"]),
        ("alrnn_rossler", ["--data.init_args.n_steps=3000"]),
        ("alrnn_ecg", [f"--data.init_args.path={DATA / 'ECG.npy'}"]),
    ],
)
def test_alrnn_recipe_runs_through_the_cli(tmp_path, recipe, data_args):
    if recipe == "alrnn_ecg" and not (DATA / "ECG.npy").is_file():
        pytest.skip(f"the ECG data set is not at {DATA}")
    args = [
        "fit",
        "--config",
        str(recipe_path(f"timeseries/{recipe}.yaml")),
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=3",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.eval_length=2000",
        *data_args,
    ]
    result = subprocess.run(
        [sys.executable, "-m", "lrnn", *args], cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True
    )
    assert result.returncode == 0, f"lrnn fit failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    run = tmp_path / "runs" / recipe / "version_0"
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for measure in ("D_stsp", "D_H", "PE", "subregions"):
        assert any(row[f"val/{measure}"] for row in rows), measure
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert any(p.name.startswith("epoch0000-dstsp") for p in (run / "checkpoints").iterdir())
    assert (run / "reconstruction.png").is_file() and (run / "symbolic_code.png").is_file()


@pytest.mark.skipif(not (DATA / "lorenz_m20_p2").is_file(), reason=f"the authors' model is not at {DATA}")
def test_recipe_keeps_the_checkpoint_of_lowest_dstsp(tmp_path):
    # The Lorenz-63 recipe as the CLI builds it, with the model set before each validation to one of three
    # versions of the authors' trained AL-RNN (exact, h shifted, W scaled), whose D_stsp differ.
    reference = ALRNN.from_reference_state_dict(torch.load(DATA / "lorenz_m20_p2", weights_only=True), P=2)
    versions = [{k: v.clone() for k, v in reference.state_dict().items()} for _ in range(3)]
    versions[0]["h"] += 0.3
    versions[2]["W"] *= 0.9
    overrides = [
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=1",
        "--trainer.check_val_every_n_epoch=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--data.init_args.n_steps=3000",
        "--data.init_args.eval_length=2000",
    ]
    cli = LrnnCLI(args=["--config", str(recipe_path("timeseries/alrnn_lorenz63.yaml")), *overrides], run=False)

    class SetModel(L.Callback):
        def on_validation_epoch_start(self, trainer, module) -> None:
            module.model.load_state_dict(versions[trainer.current_epoch])

    cli.trainer.callbacks.append(SetModel())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    run = tmp_path / "alrnn_lorenz63" / "version_0"
    with open(run / "metrics.csv") as f:
        d_stsp = [float(row["val/D_stsp"]) for row in csv.DictReader(f) if row["val/D_stsp"]]
    best = int(np.argmin(d_stsp))
    assert len(d_stsp) == 3 and len(set(d_stsp)) == 3 and best == 1  # the exact model reconstructs best
    (kept,) = [p for p in (run / "checkpoints").iterdir() if p.name != "last.ckpt"]
    assert kept.name == f"epoch{best:04d}-dstsp{d_stsp[best]:.4f}.ckpt"
    state = torch.load(kept, weights_only=True)["state_dict"]
    assert torch.equal(state["model.h"], versions[best]["h"]) and torch.equal(state["model.W"], versions[best]["W"])


def test_loss_decreases_on_lorenz63(tmp_path):
    L.seed_everything(0)
    module = DSRModule(ALRNN(20, 2, 3), forcing="sparse", tau=8, lr_start=1e-2, lr_end=5e-3)
    data = DSRDataModule(n_steps=3000, seq_len=100, batches_per_epoch=60, noise=0.05)
    trainer = L.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, data)
    with open(tmp_path / "lightning_logs" / "version_0" / "metrics.csv") as f:
        losses = [float(row["train/loss_step"]) for row in csv.DictReader(f) if row.get("train/loss_step")]
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(5e-3)  # lr_end at the last step


def test_annealed_gtf_module_updates_alpha_every_k_batches(tmp_path):
    L.seed_everything(0)
    module = DSRModule(ClippedShallowPLRNN(3, 20), forcing="gtf", alpha_method="product_upper_bound", solver="newton")
    data = DSRDataModule(n_steps=2000, seq_len=50, batches_per_epoch=11, noise=0.0)
    trainer = L.Trainer(
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    alphas = []

    class Record(L.Callback):
        def on_train_batch_end(self, *args) -> None:
            alphas.append(float(module.alpha))

    trainer.callbacks.append(Record())
    trainer.fit(module, data)
    # Updated after batches 0, 5, 10 (global steps divisible by 5); 1 → smaller, held constant in between.
    assert alphas[0] < 1.0 and alphas[1:5] == [alphas[0]] * 4 and alphas[5] != alphas[4]
