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
