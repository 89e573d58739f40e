"""``lrnn bench dsr_reproduce``: the report's contents on a short run, and (slow) the issue's Lorenz-63 targets."""

import json
import math
from pathlib import Path

import pytest
from lrnn.benchmarks.dsr_reproduce import SUMMARISED, main

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "dsr"
needs_data = pytest.mark.skipif(
    not (DATA / "lorenz63.npy").is_file() or not (DATA / "ECG.npy").is_file(),
    reason=f"the AL-RNN data sets are not at {DATA} (lorenz63.npy, ECG.npy)",
)


@needs_data
@pytest.mark.parametrize(("mode", "dataset", "data"), [([], "lorenz63", "lorenz63.npy"), (["--ecg"], "ecg", "ECG.npy")])
def test_short_run_reports_every_measure_per_seed_and_over_seeds(tmp_path, mode, dataset, data):
    out = tmp_path / "report.json"
    args = [*mode, "--first-seed", "1", "--seeds", "2", "--data", str(DATA / data), "--eval-steps", "1000"]
    args += ["--runs", str(tmp_path)]
    overrides = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.check_val_every_n_epoch=1"]
    report = main([*args, "--out", str(out), *overrides, "--data.init_args.eval_length=1000"])
    assert json.loads(out.read_text())["dataset"] == dataset
    assert report["recipe_overrides"] == [*overrides, "--data.init_args.eval_length=1000"]
    assert [row["seed"] for row in report["seeds"]] == [1, 2]
    for row in report["seeds"]:
        run = Path(row["run_dir"])
        assert run == tmp_path / f"alrnn_{dataset}" / f"seed{row['seed']}" and row["epochs"] == 1
        assert Path(row["checkpoint"]).parent == run / "checkpoints" and math.isfinite(row["val_D_stsp_of_checkpoint"])
        assert row["eval_steps"] == 1000 and row["D_stsp_ratio"] == row["D_stsp"] / row["D_stsp_self"]
        assert 0 < row["D_stsp_self"] and 0 < row["D_H_self"] < 1 and sum(row["subregion_visits"]) == 1000
        assert row["subregions"] == len(row["subregion_bits"]) == len(row["subregion_visits"])
        assert ("targets" in row) == (dataset == "lorenz63")
    assert set(report["summary"]) >= {"D_stsp", "D_stsp_self", "D_stsp_ratio", "D_H", "subregions"}
    subregions = [row["subregions"] for row in report["seeds"]]
    assert report["summary"]["subregions"]["mean"] == pytest.approx(sum(subregions) / 2)


def _seed_report(seeds: list[int], overrides: list[str]) -> dict:
    rows = [{key: float(seed + 1) for key in SUMMARISED} | {"seed": seed} for seed in seeds]
    return {"dataset": "lorenz63", "recipe": "r.yaml", "data": "d.npy", "recipe_overrides": overrides, "seeds": rows}


def test_merge_joins_one_process_per_seed_and_refuses_mismatched_runs(tmp_path):
    paths = []
    for name, seeds, overrides in [("a", [2], []), ("b", [0, 1], []), ("c", [1], []), ("d", [3], ["--x=1"])]:
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(_seed_report(seeds, overrides)))
    out = tmp_path / "merged.json"
    report = main(["--merge", str(paths[0]), str(paths[1]), "--out", str(out)])
    assert [row["seed"] for row in report["seeds"]] == [0, 1, 2]
    assert report["summary"]["D_stsp"] == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
    assert json.loads(out.read_text())["merged_from"] == [str(paths[0]), str(paths[1])]
    with pytest.raises(ValueError, match="more than one report"):
        main(["--merge", str(paths[1]), str(paths[2]), "--out", str(out)])
    with pytest.raises(ValueError, match="different recipes"):
        main(["--merge", str(paths[0]), str(paths[3]), "--out", str(out)])


@pytest.mark.slow
@needs_data
def test_alrnn_reproduces_lorenz63_over_three_seeds(tmp_path):
    # The full recipe (2000 epochs, about 50 min a seed on one CPU thread): the targets for every seed.
    report = main(
        [
            "--seeds",
            "3",
            "--data",
            str(DATA / "lorenz63.npy"),
            "--runs",
            str(tmp_path),
            "--out",
            str(tmp_path / "r.json"),
        ]
    )
    for row in report["seeds"]:
        assert row["targets"] == {"subregions": True, "D_stsp_ratio": True, "D_H": True}, row
