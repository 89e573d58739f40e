"""Reproduce the AL-RNN's reconstructions with our recipes: Lorenz-63 (or ECG) over several seeds, on the CPU.

For each seed, train the recipe (``configs/timeseries/alrnn_lorenz63.yaml`` on ``lorenz63.npy``; with ``--ecg``,
``alrnn_ecg.yaml`` on ``ECG.npy``) through LightningCLI, reload the checkpoint of lowest validation D_stsp, and
evaluate it on the papers' protocol: generate ``1.25 T`` steps from the data's first point, drop the first quarter,
compare the remaining ``T`` with the data's first ``T`` points. ``T`` is half the series by default (50,000 for
Lorenz-63, 5,000 for ECG), so that the data's own floor exists at the same sample size: its first against its
last ``T`` points. ``--protocol alrnn`` instead follows ALRNN-DSR's ``train_!`` (the AL-RNN paper's numbers):
``T`` is the whole series, the orbit is its ``T`` states from the first point with nothing dropped, compared
with the whole series; the floors are then the median over 5 independent orbits of the system compared with
the series (Lorenz-63 only, ``systems.lorenz63`` with seeds 1-5; NaN for ECG): at T = 100,000 they scatter
from 0.035 to 0.38 with the orbit's share of time in each wing. Reported per seed and as mean ± std over seeds:

- ``D_stsp`` (the recipe's bins: 30, or 8 for ECG), the floor ``D_stsp_self`` and the ratio of the two;
- ``D_H`` (σ = 20 frequency bins) and the floor ``D_H_self``;
- the linear subregions the orbit uses, with their visit counts.

The issue's Lorenz-63 targets, checked per seed under ``targets``: 3 subregions, D_stsp ≤ 2 × D_stsp_self,
D_H ≤ 0.15. Results go to ``benchmarks/results/dsr_<dataset>_cpu.json``; each seed's run (logs, checkpoints, plots,
and ``eval_*.png`` of the evaluated orbit) to ``<runs>/<recipe name>/seed<k>/``. Training runs on ``--threads``
CPU threads (1 by default). Run from the repository root (the default data paths are relative to it). Arguments
not listed below go to the recipe:

    lrnn bench dsr_reproduce                           # 3 seeds of the full recipe: 2000 epochs, ~48 min a seed
    lrnn bench dsr_reproduce --ecg --seeds 1           # 4000 epochs of M = 100, ~46 min
    lrnn bench dsr_reproduce --trainer.max_epochs=400  # shorter runs (the lr still decays 1e-3 -> 1e-5)

Seeds run one after the other; to use several cores, run one process per seed (``--first-seed k --seeds 1 --out
seed_k.json``) and join their reports (``--merge seed_0.json seed_1.json seed_2.json``): the rows are kept, the
summary is recomputed over all of them.
"""

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from lrnn.benchmarks.scan import RESULTS, write_report
from lrnn.configs import recipe_path
from lrnn.timeseries.dsr.data import DSRDataModule
from lrnn.timeseries.dsr.lit import DSRModule
from lrnn.timeseries.dsr.metrics import power_spectrum_error, state_space_divergence
from lrnn.timeseries.dsr.plots import plot_reconstruction, plot_symbolic_code
from lrnn.timeseries.dsr.subregions import symbolic_code
from lrnn.timeseries.dsr.systems import lorenz63

from lrnn.cli import LrnnCLI

DATASETS = {
    "lorenz63": ("timeseries/alrnn_lorenz63.yaml", "../shared/data/dsr/lorenz63.npy"),
    "ecg": ("timeseries/alrnn_ecg.yaml", "../shared/data/dsr/ECG.npy"),
}
TARGETS = {"lorenz63": {"subregions": 3, "D_stsp_ratio_max": 2.0, "D_H_max": 0.15}}
SUMMARISED = ("D_stsp", "D_stsp_self", "D_stsp_ratio", "D_H", "D_H_self", "subregions", "fit_seconds")


@torch.no_grad()
def evaluate(
    module: DSRModule, series: torch.Tensor, steps: int, out_dir: Path, independent: list[torch.Tensor] | None = None
) -> dict:
    """The measures of a free orbit from ``series[0]`` against ``series[:steps]``, with the data's floors at the
    same size; draws ``eval_reconstruction.png`` and ``eval_symbolic_code.png`` into ``out_dir``.

    Without ``independent`` (protocol ``half``): ``1.25 steps`` states, the first quarter dropped; the floors are
    ``series[:steps]`` against ``series[-steps:]``. With ``independent`` (protocol ``alrnn``): ``steps`` states,
    none dropped; the floors are the medians of ``series[:steps]`` against each ``independent[k][:steps]`` (NaN if
    none is long enough)."""
    model, hp = module.model, module.hparams
    x = series[:steps]
    code, orbit = symbolic_code(model, model.init_state(x[:1]), steps, steps // 4 if independent is None else 0)
    x_gen = model.readout(orbit)
    d_stsp = state_space_divergence(x, x_gen, hp.n_bins)
    others = [series[-steps:]] if independent is None else [o[:steps] for o in independent if o.shape[0] >= steps]

    def floor(measure, setting) -> float:
        return float(np.median([measure(x, o, setting) for o in others])) if others else float("nan")

    d_stsp_self = floor(state_space_divergence, hp.n_bins)
    if torch.isfinite(x_gen).all():
        plot_reconstruction(x, x_gen, out_dir / "eval_reconstruction.png", hp.psd_smoothing, f"T = {steps}")
        plot_symbolic_code(x_gen, code, out_dir / "eval_symbolic_code.png", f"T = {steps}")
    return {
        "D_stsp": d_stsp,
        "D_stsp_self": d_stsp_self,
        "D_stsp_ratio": d_stsp / d_stsp_self,
        "D_H": power_spectrum_error(x, x_gen, hp.psd_smoothing),
        "D_H_self": floor(power_spectrum_error, hp.psd_smoothing),
        "subregions": code.bits.shape[0],
        "subregion_bits": ["".join("1" if b else "0" for b in bits) for bits in code.bits.tolist()],
        "subregion_visits": code.counts.tolist(),
    }


def train_seed(
    recipe: str, data: str, seed: int, runs: Path, overrides: list[str]
) -> tuple[dict, DSRModule, DSRDataModule]:
    """Fit the recipe with ``seed`` and reload its lowest-D_stsp checkpoint; returns the run's record, the module
    and the data module."""
    args = [
        "--config",
        str(recipe_path(recipe)),
        f"--seed_everything={seed}",
        f"--data.init_args.path={data}",
        f"--trainer.logger.init_args.save_dir={runs}",
        f"--trainer.logger.init_args.version=seed{seed}",
        "--trainer.enable_progress_bar=false",
        *overrides,
    ]
    with warnings.catch_warnings():  # the arguments are ours, not sys.argv
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = LrnnCLI(args=args, run=False, prog="lrnn bench dsr_reproduce")
    trainer, module = cli.trainer, cli.model
    start = time.perf_counter()
    trainer.fit(module, datamodule=cli.datamodule)
    fit_seconds = time.perf_counter() - start
    best, best_score = trainer.checkpoint_callback.best_model_path, trainer.checkpoint_callback.best_model_score
    if best:
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=True)["state_dict"])
    record = {
        "seed": seed,
        "epochs": trainer.current_epoch,
        "fit_seconds": round(fit_seconds, 1),
        "seconds_per_epoch": round(fit_seconds / max(trainer.current_epoch, 1), 3),  # validation included
        "checkpoint": best or "final weights (no validation ran)",
        "val_D_stsp_of_checkpoint": float("nan") if best_score is None else float(best_score),
        "run_dir": trainer.logger.log_dir,
    }
    return record, module, cli.datamodule


def summarise(rows: list[dict]) -> dict:
    """Mean, std (over seeds, ddof = 1; 0 for one seed), min and max of each summarised field (NaN propagates)."""
    summary = {}
    for key in SUMMARISED:
        values = np.array([float(row[key]) for row in rows])
        spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        summary[key] = {
            "mean": float(values.mean()),
            "std": spread,
            "min": float(values.min()),
            "max": float(values.max()),
        }
    return summary


def check_targets(row: dict, targets: dict) -> dict:
    return {
        "subregions": row["subregions"] == targets["subregions"],
        "D_stsp_ratio": row["D_stsp_ratio"] <= targets["D_stsp_ratio_max"],
        "D_H": row["D_H"] <= targets["D_H_max"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench dsr_reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--ecg", action="store_true", help="the ECG recipe instead of Lorenz-63")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (first, first + 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed")
    parser.add_argument("--merge", type=Path, nargs="+", help="join these reports (of one recipe) instead of training")
    parser.add_argument("--data", default=None, help="the series (default: ../shared/data/dsr/<dataset>.npy)")
    parser.add_argument("--eval-steps", type=int, default=None, help="T of the evaluation (default: see --protocol)")
    parser.add_argument(
        "--protocol",
        choices=("half", "alrnn"),
        default="half",
        help="half: T = half the series, 0.25 T dropped; alrnn: T = the series, nothing dropped (ALRNN-DSR)",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for training and evaluation")
    parser.add_argument("--runs", type=Path, default=Path("runs/dsr_reproduce"), help="folder of the runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args, overrides = parser.parse_known_args(argv)
    if args.merge:
        return merge_reports(args.merge, args.out)
    dataset = "ecg" if args.ecg else "lorenz63"
    recipe, default_data = DATASETS[dataset]
    data = args.data or default_data
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            record, module, datamodule = train_seed(recipe, data, seed, args.runs, overrides)
            series = datamodule.prepare_series()
            independent = None
            if args.protocol == "alrnn":
                steps = args.eval_steps or series.shape[0]
                seeds = range(1, 6) if dataset == "lorenz63" else ()  # no second orbit of the ECG: NaN floors
                independent = [torch.from_numpy(lorenz63(steps, seed=k)).to(series.dtype) for k in seeds]
            else:
                steps = args.eval_steps or series.shape[0] // 2
            record |= {
                "eval_steps": steps,
                "protocol": args.protocol,
                **evaluate(module, series, steps, Path(record["run_dir"]), independent),
            }
            if dataset in TARGETS:
                record["targets"] = check_targets(record, TARGETS[dataset])
            rows.append(record)
            print(
                f"seed {seed}: D_stsp {record['D_stsp']:.4f} (self {record['D_stsp_self']:.4f}, ratio "
                f"{record['D_stsp_ratio']:.2f}), D_H {record['D_H']:.4f} (self {record['D_H_self']:.4f}), "
                f"{record['subregions']} subregions {record['subregion_visits']}, {record['epochs']} epochs in "
                f"{record['fit_seconds']:.0f} s"
            )
    finally:
        torch.set_num_threads(threads)
    report = {
        "gpu": "cpu",
        "dataset": dataset,
        "recipe": recipe,
        "data": str(data),
        "recipe_overrides": overrides,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "targets": TARGETS.get(dataset),
        "seeds": rows,
        "summary": summarise(rows),
    }
    print_summary(report["summary"])
    write_report(report, f"dsr_{dataset}", args.out or RESULTS / f"dsr_{dataset}_cpu.json")
    return report


def print_summary(summary: dict) -> None:
    for key, stats in summary.items():
        print(f"{key:>14}: {stats['mean']:.4f} ± {stats['std']:.4f} (min {stats['min']:.4f}, max {stats['max']:.4f})")


def merge_reports(paths: list[Path], out: Path | None) -> dict:
    """One report from several runs of the same recipe (e.g. one process per seed): their seed rows, the summary
    over all of them, the first report's settings; refuses reports of different recipes or overrides."""
    reports = [json.loads(path.read_text()) for path in paths]
    settings = {(r["recipe"], r["data"], tuple(r["recipe_overrides"])) for r in reports}
    if len(settings) > 1:
        raise ValueError(f"cannot merge runs of different recipes, data or overrides: {sorted(settings)}")
    rows = sorted((row for r in reports for row in r["seeds"]), key=lambda row: row["seed"])
    seeds = [row["seed"] for row in rows]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"a seed appears in more than one report: {seeds}")
    report = reports[0] | {"seeds": rows, "summary": summarise(rows), "merged_from": [str(p) for p in paths]}
    print_summary(report["summary"])
    write_report(report, f"dsr_{report['dataset']}", out or RESULTS / f"dsr_{report['dataset']}_cpu.json")
    return report


if __name__ == "__main__":
    main()
