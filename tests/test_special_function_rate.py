"""The kernel that measures ``tl.exp2``'s rate for ``lrnn bench selective_scan`` computes the chains it claims
(interpreter on the CPU), so the rate is of real exponentials, and it refuses inputs it cannot tile."""

import pytest
import torch
from lrnn.benchmarks.special_function_rate import BLOCK, UNROLL, exp2_chains


def test_exp2_chains_iterate_exp2_of_minus_x(device):
    x = torch.rand(2 * BLOCK, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = x.clone()
    for _ in range(2 * UNROLL):
        expected = torch.exp2(-expected)
    got = exp2_chains(x.float().to(device), rounds=2 * UNROLL)
    torch.testing.assert_close(got.cpu().double(), expected, rtol=1e-5, atol=0)
    assert got.min() >= 0.5 and got.max() <= 1.0


@pytest.mark.parametrize(
    "x,rounds",
    [(torch.rand(BLOCK + 1), UNROLL), (torch.rand(BLOCK).double(), UNROLL), (torch.rand(BLOCK), UNROLL + 1)],
)
def test_exp2_chains_name_what_they_cannot_tile(x, rounds):
    with pytest.raises(ValueError, match="exp2_chains takes"):
        exp2_chains(x, rounds)
