"""The elementwise kernels that give ``lrnn bench scan`` its streams ceiling compute what they claim (interpreter
on the CPU), so the times beside the scan's are of real work."""

import pytest
import torch
from lrnn.benchmarks.streams import BLOCK, backward_streams, forward_streams


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stream_kernels_compute_their_products(device, dtype):
    gen = torch.Generator().manual_seed(0)
    a, x, dh = (torch.randn(2, BLOCK + 37, generator=gen).to(dtype).to(device) for _ in range(3))
    torch.testing.assert_close(forward_streams(a, x), (a.float() * x.float()).to(dtype))
    da, dx = backward_streams(a, x, dh)
    torch.testing.assert_close(da, (x.float() * dh.float()).to(dtype))
    torch.testing.assert_close(dx, (a.float() * dh.float()).to(dtype))
