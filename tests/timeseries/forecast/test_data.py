"""The forecasting data module: both split protocols' borders on ETTh1, scaling fitted on the training rows only,
window alignment, time features, S/M/MS, drop_last on the test loader, the generated series, clear errors."""

from datetime import datetime

import numpy as np
import pytest
import torch
from lrnn.timeseries.forecast import EpochShuffleSampler, ForecastDataModule, seasonal_series, split_rows, time_features


def make_module(path, **kwargs) -> ForecastDataModule:
    dm = ForecastDataModule(path=str(path), **kwargs)
    dm.setup("fit")
    return dm


def test_tpgn_protocol_borders_scaling_and_windows_on_etth1(etth1, etth1_raw):
    dm = make_module(etth1, target="OT", features="S", input_len=168, horizon=168, protocol="tpgn")
    n = 17420  # 60 / 20 / 20 %: train rows 0..10452, val 10452..13936, test 13936..17420; inputs reach 168 back
    assert len(etth1_raw["OT"]) == n
    assert {split: ds.rows for split, ds in dm.splits.items()} == {
        "train": range(0, 10452),
        "val": range(10452 - 168, 13936),
        "test": range(13936 - 168, n),
    }
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [10452 - 335, 3484 - 167, 3484 - 167]
    assert dm.splits["test"].horizon_rows(0) == range(13936, 14104)
    assert dm.splits["test"].horizon_rows(len(dm.splits["test"]) - 1).stop == n

    ot = etth1_raw["OT"]
    mean, std = ot[:10452].mean(), ot[:10452].std()
    assert abs(ot.mean() - mean) > 0.5  # fitting on all rows would give a different scaler
    np.testing.assert_allclose(dm.scaler.mean, [mean])
    np.testing.assert_allclose(dm.scaler.std, [std])
    item = dm.splits["test"][5]
    start = 13936 - 168 + 5
    np.testing.assert_allclose(item["x"][:, 0], (ot[start : start + 168] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(item["y"][:, 0], (ot[start + 168 : start + 336] - mean) / std, rtol=1e-5, atol=1e-5)
    assert item["x_mark"].shape == (168, 4) and int(item["index"]) == 5


def test_ett_protocol_borders_match_time_series_library_on_etth1(etth1, etth1_raw):
    dm = make_module(etth1, target="OT", features="M", input_len=96, horizon=96, protocol="ett")
    assert {split: ds.rows for split, ds in dm.splits.items()} == {
        "train": range(0, 8640),
        "val": range(8640 - 96, 11520),
        "test": range(11520 - 96, 14400),
    }
    # the window counts Time-Series-Library prints for ETTh1 96 -> 96: train 8449, val 2785, test 2785
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [8449, 2785, 2785]
    assert dm.channel_names == ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
    raw = np.stack([etth1_raw[name] for name in dm.channel_names], axis=1)
    np.testing.assert_allclose(dm.scaler.mean, raw[:8640].mean(axis=0))
    np.testing.assert_allclose(dm.scaler.std, raw[:8640].std(axis=0))
    assert dm.splits["test"].horizon_rows(0).start == 11520
    with pytest.raises(ValueError, match="the ett protocol needs 14400 rows"):
        split_rows(14000, 96, "ett", (8640, 11520, 14400))


def test_features_s_m_ms_and_the_target(etth1):
    s = make_module(etth1, target="HUFL", features="S", input_len=48, horizon=24)
    m = make_module(etth1, target="HUFL", features="M", input_len=48, horizon=24)
    ms = make_module(etth1, target="HUFL", features="MS", input_len=48, horizon=24)
    assert s.channel_names == ("HUFL",) and s.target_names == ("HUFL",)
    assert m.channel_names[-1] == "HUFL" and len(m.channel_names) == 7 and m.target_names == m.channel_names
    assert ms.target_names == ("HUFL",)
    item_s, item_m, item_ms = s.splits["val"][3], m.splits["val"][3], ms.splits["val"][3]
    assert item_m["x"].shape == (48, 7) and item_m["y"].shape == (24, 7)
    assert item_ms["x"].shape == (48, 7) and item_ms["y"].shape == (24, 1)
    torch.testing.assert_close(item_ms["y"], item_m["y"][:, -1:])
    torch.testing.assert_close(item_s["y"], item_m["y"][:, -1:])
    assert make_module(etth1, input_len=48, horizon=24).target_names == ("OT",)  # default: the last column
    mean, std = ms.target_scale()
    assert mean.shape == std.shape == (1,) and mean.item() == pytest.approx(ms.scaler.mean[-1])


def test_time_features_are_timef_in_half_unit_range(etth1, etth1_raw):
    dm = make_module(etth1, input_len=48, horizon=24)
    marks = dm.marks.numpy()
    assert marks.shape == (17420, 4) and marks.min() >= -0.5 and marks.max() <= 0.5
    assert marks.min() == -0.5 and marks.max() == 0.5
    rng = np.random.default_rng(0)
    for row in [0, *rng.integers(0, 17420, 20)]:
        when = datetime.fromisoformat(etth1_raw["date"][row])
        expected = [
            when.hour / 23 - 0.5,
            when.weekday() / 6 - 0.5,
            (when.day - 1) / 30 - 0.5,
            (when.timetuple().tm_yday - 1) / 365 - 0.5,
        ]
        np.testing.assert_allclose(marks[row], expected, atol=1e-6, err_msg=etth1_raw["date"][row])
    np.testing.assert_allclose(marks[0], [-0.5, 4 / 6 - 0.5, -0.5, 182 / 365 - 0.5], atol=1e-6)  # Fri 2016-07-01
    dates = np.array(["2020-03-04 05:06:00"], dtype="datetime64[s]")
    assert time_features(dates, "t").shape == (1, 5) and time_features(dates, "d").shape == (1, 3)
    np.testing.assert_allclose(time_features(dates, "t")[0, 0], 6 / 59 - 0.5, atol=1e-6)


def test_drop_last_on_the_test_loader_is_off_unless_asked(etth1):
    def tested(dm):
        return sum(batch["x"].shape[0] for batch in dm.test_dataloader())

    default = make_module(etth1, input_len=168, horizon=168)
    assert tested(default) == 3317
    paper = make_module(etth1, input_len=168, horizon=168, drop_last_test=True)
    assert tested(paper) == 3317 - 3317 % 32


def test_training_order_is_fixed_by_seed_and_epoch():
    a, b = EpochShuffleSampler(50, seed=3), EpochShuffleSampler(50, seed=3)
    first = list(a)
    assert sorted(first) == list(range(50)) and list(b) == first
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(EpochShuffleSampler(50, seed=4)) != first


def test_generated_series_and_future_windows():
    one, two = seasonal_series(500, 2, seed=1), seasonal_series(500, 2, seed=1)
    assert one.names == ("s0", "s1") and np.array_equal(one.values, two.values)
    assert (np.diff(one.dates) == np.timedelta64(1, "h")).all()
    daily_lag = np.corrcoef(one.values[24:, 0], one.values[:-24, 0])[0, 1]
    assert daily_lag > 0.5  # the daily cycle is there
    dm = ForecastDataModule(features="M", input_len=48, horizon=12, synthetic_steps=400, predict_split="future")
    dm.setup("predict")
    assert dm.channel_names == ("s0", "s1", "s2")
    (batch,) = list(dm.predict_dataloader())
    assert batch["x"].shape == (1, 48, 3) and batch["y_mark"].shape == (1, 12, 4) and "y" not in batch
    torch.testing.assert_close(batch["x"][0], dm.values[-48:])
    last = dm.load().dates[-1]
    assert list(dm.horizon_dates(0)) == [last + np.timedelta64(k, "h") for k in range(1, 13)]


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, row)) for row in rows)]) + "\n")
    return path


def hourly_rows(n, columns=2):
    start = np.datetime64("2021-01-01T00:00:00")
    return [[str(start + np.timedelta64(k, "h")).replace("T", " "), *(k + c for c in range(columns))] for k in range(n)]


def test_clear_errors(tmp_path):
    good = write_csv(tmp_path / "good.csv", ["date", "a", "b"], hourly_rows(200))
    with pytest.raises(ValueError, match=r"no date column 'time'; its columns are \['date', 'a', 'b'\]"):
        make_module(good, date_column="time", target="a", input_len=24, horizon=12)
    with pytest.raises(ValueError, match=r"target column 'OT' is not in .*good.csv; its value columns are \['a', 'b"):
        make_module(good, target="OT", input_len=24, horizon=12)

    rows = hourly_rows(200)
    rows[7][2] = "nan"
    nan = write_csv(tmp_path / "nan.csv", ["date", "a", "b"], rows)
    with pytest.raises(ValueError, match=r"column 'b' has 1 NaN/inf values, the first in data row 7 \(line 9\)"):
        make_module(nan, features="M", target="b", input_len=24, horizon=12)
    make_module(nan, features="S", target="a", input_len=24, horizon=12)  # the NaN is in a column S does not read
    rows[7][2] = ""
    empty = write_csv(tmp_path / "empty.csv", ["date", "a", "b"], rows)
    with pytest.raises(ValueError, match=r"column 'b', data row 7 \(line 9\): '' is not a number"):
        make_module(empty, target="b", input_len=24, horizon=12)

    rows = hourly_rows(200)
    rows[3][0] = "03/01/2021 03:00"
    bad_date = write_csv(tmp_path / "bad_date.csv", ["date", "a", "b"], rows)
    with pytest.raises(ValueError, match=r"date '03/01/2021 03:00' in data row 3 is not ISO 8601"):
        make_module(bad_date, input_len=24, horizon=12)

    short = write_csv(tmp_path / "short.csv", ["date", "a", "b"], hourly_rows(100))  # val/test: 20 rows each
    with pytest.raises(ValueError, match=r"the val split has 44 rows .* fewer than input_len \+ horizon = 24 \+ 24"):
        make_module(short, input_len=24, horizon=24)
    with pytest.raises(ValueError, match="features must be one of"):
        ForecastDataModule(features="X")
    with pytest.raises(ValueError, match="protocol must be one of"):
        ForecastDataModule(protocol="tsl")
