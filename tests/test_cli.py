"""The ``lrnn`` command in a subprocess: its help, a recipe for a few steps (also under DDP), ``bench``, ``demo``.

Plain ``ddp`` re-launches its own command line for rank 1, so DDP runs here through the CLI in a subprocess, never
inside pytest; ``tests/helpers/save_state.py``, a test-only callback on the subprocess's ``PYTHONPATH``, saves
each rank's ``state_dict`` when ``fit`` ends.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lrnn.configs import recipe_path

HELPERS = Path(__file__).parent / "helpers"

# Small sizes for the recipes; the YAMLs themselves stay as they are.
FAST = [
    "--trainer.accelerator=cpu",
    "--trainer.enable_progress_bar=false",
    "--data.init_args.n_train=64",
    "--data.init_args.n_val=32",
    "--data.init_args.n_test=32",
    "--data.init_args.length=64",
    "--data.init_args.num_workers=0",
]


def lrnn(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m lrnn ARGS`` (the console script's code) and fail with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "lrnn", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"lrnn {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_help_lists_every_subcommand(tmp_path):
    out = lrnn("--help", cwd=tmp_path).stdout
    for name in ("fit", "validate", "test", "predict", "bench", "demo"):
        assert any(line.split()[:1] == [name] and len(line.split()) > 1 for line in out.splitlines()), name


def test_console_script_is_installed_next_to_python():
    script = Path(sys.executable).parent / "lrnn"
    if not script.exists():
        pytest.skip("lrnn is not installed in this environment (run `make test`)")
    result = subprocess.run([script, "bench", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "lrnn bench <name>" in result.stdout


def test_fit_a_recipe_for_three_steps(tmp_path):
    lrnn(
        "fit",
        "--config",
        str(recipe_path("timeseries/s5_synthetic.yaml")),
        "--trainer.max_steps=3",
        "--trainer.limit_val_batches=1",
        "--model.init_args.d_model=16",
        "--model.init_args.n_layers=1",
        *FAST,
        cwd=tmp_path,
    )
    run = tmp_path / "runs" / "s5_synthetic" / "version_0"
    assert (run / "metrics.csv").is_file() and (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_unknown_benchmark_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lrnn", "bench", "no_such_bench"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0 and "unknown benchmark 'no_such_bench'" in result.stderr


def test_demo_writes_metrics_and_plots(tmp_path):
    """Every demo part trains a few steps, tests, and lists its plots; overrides here must suit every part."""
    trainer_only = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]
    out = lrnn("demo", "--trainer.max_steps=4", "--trainer.limit_val_batches=1", *trainer_only, cwd=tmp_path).stdout
    summary = json.loads((tmp_path / "runs" / "demo" / "metrics.json").read_text())
    assert 0 <= summary["timeseries"]["test"]["test/acc"] <= 1 and summary["timeseries"]["steps"] == 4
    assert summary["dsr"]["test"]["test/subregions"] >= 1 and summary["dsr"]["steps"] == 4
    assert any(plot.endswith("symbolic_code.png") for plot in summary["dsr"]["plots"])
    for part in ("timeseries", "dsr"):
        for plot in summary[part]["plots"]:
            assert Path(plot).is_file() and Path(plot).stat().st_size > 0 and plot in out
    assert str(tmp_path / "runs" / "demo" / "metrics.json") in out


def test_ddp_two_cpu_ranks_end_with_identical_weights(tmp_path):
    callback = {"class_path": "save_state.SaveStateDict", "init_args": {"out_dir": str(tmp_path / "weights")}}
    pythonpath = os.pathsep.join(filter(None, [str(HELPERS), os.environ.get("PYTHONPATH")]))
    lrnn(
        "fit",
        "--config",
        str(recipe_path("demo/timeseries.yaml")),
        "--trainer.strategy=ddp",
        "--trainer.devices=2",
        "--trainer.max_steps=5",
        "--trainer.limit_val_batches=1",
        f"--trainer.callbacks+={json.dumps(callback)}",
        *FAST,
        cwd=tmp_path,
        env={"PYTHONPATH": pythonpath},
    )
    ranks = [torch.load(tmp_path / "weights" / f"rank{k}.pt") for k in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 5
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys() and any(key.endswith("mixer.B") for key in first)
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_validate_before_fit_in_one_process(tmp_path):
    """Recipes validate and test under no_grad, not inference mode: metric states that trainer.validate resets must
    stay updatable by the validation inside a later fit (they were not: "Inplace update to inference tensor")."""
    import warnings

    from lrnn.cli import LrnnCLI

    overrides = [
        "--trainer.max_epochs=1", "--trainer.max_steps=-1", "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = LrnnCLI(args=["--config", str(recipe_path("demo/forecast.yaml")), *overrides], run=False)
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.current_epoch == 1
