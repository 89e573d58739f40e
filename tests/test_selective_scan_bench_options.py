"""``lrnn bench selective_scan --config``: overrides reach the launch config of the direction they name."""

from lrnn.benchmarks.selective_scan import override_config
from lrnn.core.scan.selective import triton as face


def test_config_overrides_apply_per_direction(monkeypatch):
    monkeypatch.setattr(face, "launch_config", face.launch_config)
    default_fwd, default_bwd = face.launch_config(768, 1, 16, "fwd"), face.launch_config(768, 1, 16, "bwd")
    override_config({"PREFETCH": 1, "bwd.BD": 16})
    fwd, bwd = face.launch_config(768, 1, 16, "fwd"), face.launch_config(768, 1, 16, "bwd")
    assert fwd == {**default_fwd, "PREFETCH": 1}
    assert bwd == {**default_bwd, "PREFETCH": 1, "BD": 16}
    assert face.launch_config(768, 1, 16) == fwd


def test_sweep_launches_each_direction_with_its_own_config(monkeypatch, device):
    """The sweep's forward and backward run with their directions' configs (the backward's has keys the forward's
    kernel does not take); the timer is replaced by one call."""
    from lrnn.benchmarks import selective_scan as bench

    monkeypatch.setattr(bench, "SWEEP_SHAPES", {"tiny": (1, 9, 4, 1, 4)})
    monkeypatch.setattr(bench, "SWEEP_CONFIGS", [(4, 8, 1, None), (4, 8, 1, False)])
    monkeypatch.setattr(bench, "median_ms", lambda fn: fn() and 1.0)
    rows = bench.sweep(device)
    assert [("error" in row, row["bwd_PREFETCH"]) for row in rows] == [(False, True), (False, False)]
