"""Our definitions against fla's own naive loops (fla-core, a dev dependency), so both mean the same recurrence."""

import pytest
import torch
import torch.nn.functional as F
from lrnn.core.scan import chunk_gla, linear_scan

fla_gla = pytest.importorskip("fla.ops.gla.naive", reason="fla-core is not installed")
fla_hgrn = pytest.importorskip("fla.ops.hgrn.naive", reason="fla-core is not installed")


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_linear_scan_is_fla_hgrn(monkeypatch, backend):
    """fla's HGRN, ``h_t = exp(g_t) h_{t-1} + x_t``, is ``linear_scan`` with ``a = exp(g)``."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    gen = torch.Generator().manual_seed(0)
    x, g = torch.randn(2, 77, 33, generator=gen), F.logsigmoid(torch.randn(2, 77, 33, generator=gen))
    h0 = torch.randn(2, 33, generator=gen)
    ours, ours_final = linear_scan(g.exp(), x, h0, output_final_state=True)
    theirs, theirs_final = fla_hgrn.naive_recurrent_hgrn(x, g, h0, output_final_state=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_final, theirs_final, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_chunk_gla_is_fla_gla(monkeypatch, backend):
    """fla's GLA with per-key log gates, default scale ``K^-1/2``, initial and final state."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 2, 70, 3, 48, generator=gen).unbind(0)
    v = torch.randn(2, 70, 3, 20, generator=gen)
    g = F.logsigmoid(torch.randn(2, 70, 3, 48, generator=gen)) / 4
    h0 = torch.randn(2, 3, 48, 20, generator=gen)
    ours, ours_final = chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    theirs, theirs_final = fla_gla.naive_recurrent_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours_final, theirs_final, rtol=1e-4, atol=1e-5)
