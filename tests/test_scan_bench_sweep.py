"""``lrnn bench scan --sweep`` runs the configurations it names both ways: the per-sequence kernels or the copy-engine
ones (interpreter on the CPU; the timer is replaced by one call, so the kernels run but are not timed)."""

import pytest
import torch
from lrnn.benchmarks import scan
from lrnn.core.scan.linear import linear_scan_reference


@pytest.mark.parametrize("stages", [None, [2]])
def test_sweep_times_the_configurations_it_names(monkeypatch, device, stages):
    calls = []
    monkeypatch.setattr(scan, "median_ms", lambda fn: calls.append(fn()) or 1.0)
    gen = torch.Generator().manual_seed(0)
    a, x, dh = (torch.rand(2, 20, 16, generator=gen).to(device) for _ in range(3))
    rows = scan.sweep_configs(a, x, dh, warps=[1], tiles=[(16, 8)], stages=stages)
    assert [row.get("tma", False) for row in rows] == [stages is not None]
    assert "bwd_ms" in rows[0] and len(calls) == 2
    h_ref, _ = linear_scan_reference(a.double(), x.double())
    torch.testing.assert_close(calls[0][0].double(), h_ref, rtol=1e-5, atol=1e-6)


def test_config_overrides_apply_per_direction(monkeypatch):
    """``--config bwd.tma=1 bwd.num_stages=2``: the backward's launch goes through the copy engine, the forward's
    keeps its default."""
    from lrnn.core.scan.linear import triton as face

    monkeypatch.setattr(face, "launch_config", face.launch_config)
    default_fwd = face.launch_config(8, 4096, torch.bfloat16, "fwd", False)
    scan.override_config({"bwd.tma": 1, "bwd.num_stages": 2})
    assert face.launch_config(8, 4096, torch.bfloat16, "fwd", False) == default_fwd
    assert {"tma": 1, "num_stages": 2}.items() <= face.launch_config(8, 4096, torch.bfloat16, "bwd", False).items()
