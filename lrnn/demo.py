"""``lrnn demo``: train and test each demo recipe, then write ``metrics.json`` and plots.

Each recipe in ``DEMO_RECIPES`` (``configs/demo/``) is a complete LightningCLI config whose logger is a
``CSVLogger``; arguments after ``lrnn demo`` override every recipe (``lrnn demo --trainer.max_epochs=1``).
A recipe's Lightning outputs and plots go to the logger's ``log_dir`` (``runs/demo/<part>/``); the summary of
all parts goes to ``metrics.json`` in the logger's ``save_dir`` (``runs/demo/``).
"""

import json
import time
import warnings
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from lrnn.configs import recipe_path

from .cli import LrnnCLI
from .report import plot_confusion_matrix, plot_training_curves

DEMO_RECIPES = (
    "demo/timeseries.yaml",
    "demo/dsr.yaml",
    "demo/forecast.yaml",
    "demo/vision.yaml",
    "demo/speech.yaml",
    "demo/pointcloud.yaml",
)


def run_part(recipe: str, overrides: list[str]) -> tuple[Path, dict]:
    """Fit and test one recipe; returns the logger's ``save_dir`` and the part's record for ``metrics.json``."""
    with warnings.catch_warnings():  # `lrnn demo` hands its own arguments on: sys.argv is already consumed
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = LrnnCLI(args=["--config", str(recipe_path(recipe)), *overrides], run=False, prog="lrnn demo")
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    if not isinstance(trainer.logger, CSVLogger):
        raise TypeError(f"demo recipe {recipe} must log with a CSVLogger, got {type(trainer.logger).__name__}")
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    fit_seconds = time.perf_counter() - start
    (test_metrics,) = trainer.test(model, datamodule=data)
    record = {
        "recipe": recipe,
        "fit_seconds": round(fit_seconds, 1),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "test": test_metrics,
    }
    if trainer.is_global_zero:
        log_dir = Path(trainer.logger.log_dir).resolve()
        plots = [plot_training_curves(log_dir / "metrics.csv", log_dir / "training_curves.png")]
        confusion = getattr(model, "test_confusion", None)
        if confusion is not None:
            matrix = confusion.compute()
            names = getattr(data, "class_names", [str(k) for k in range(matrix.shape[0])])
            plots.append(plot_confusion_matrix(matrix, names, log_dir / "confusion_matrix.png"))
            record["chance_accuracy"] = round(1 / matrix.shape[0], 4)
        plots += [path for path in sorted(log_dir.glob("*.png")) if path not in plots]
        record["plots"] = [str(path) for path in plots]
    return Path(trainer.logger.save_dir).resolve(), record


def run_demo(overrides: list[str]) -> dict:
    """Run every demo part, print a summary and write ``metrics.json``; returns what it wrote."""
    summary = {}
    for recipe in DEMO_RECIPES:
        out_dir, summary[Path(recipe).stem] = run_part(recipe, overrides)
    if rank_zero_only.rank != 0:
        return summary
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_json = out_dir / "metrics.json"
    metrics_json.write_text(json.dumps(summary, indent=2) + "\n")
    print("\nlrnn demo")
    for part, record in summary.items():
        metrics = ", ".join(f"{key} {value:.4f}" for key, value in record["test"].items())
        chance = f" (chance accuracy {record['chance_accuracy']:.3f})" if "chance_accuracy" in record else ""
        print(f"  {part}: {metrics}{chance}; trained {record['steps']} steps in {record['fit_seconds']:.0f} s")
        for plot in record.get("plots", []):
            print(f"  plot: {plot}")
    print(f"  metrics: {metrics_json}")
    return summary
