"""The PNG figures: drawn for 1 to 5 dimensions without touching pyplot's backend, and bad inputs refused."""

import matplotlib
import numpy as np
import pytest
import torch
from lrnn.timeseries.dsr.plots import plot_reconstruction, plot_symbolic_code
from lrnn.timeseries.dsr.subregions import symbolic_code_from_bits

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("n_dims", [1, 2, 3, 5])
def test_reconstruction_plot_is_a_png_for_any_dimension(tmp_path, n_dims):
    rng = np.random.default_rng(n_dims)
    x_true = rng.standard_normal((400, n_dims)).cumsum(0)
    x_gen = torch.from_numpy(rng.standard_normal((300, n_dims)).cumsum(0)).float()
    backend = matplotlib.get_backend()
    path = plot_reconstruction(x_true, x_gen, tmp_path / "sub" / "reconstruction.png", smoothing=2.0, title="t")
    assert path == tmp_path / "sub" / "reconstruction.png" and path.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.get_backend() == backend


def test_symbolic_code_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3))
    code = symbolic_code_from_bits(torch.from_numpy(x[:, :2] > 0))
    path = plot_symbolic_code(x, code, tmp_path / "code.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_bad_inputs(tmp_path):
    x = np.zeros((100, 3))
    with pytest.raises(ValueError, match=r"x_true must be a \[T, N\] series"):
        plot_reconstruction(x[:, 0], x, tmp_path / "a.png")
    with pytest.raises(ValueError, match="same N"):
        plot_reconstruction(x, x[:, :2], tmp_path / "a.png")
    code = symbolic_code_from_bits(torch.zeros(100, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x must have shape \[T=100, N >= 2\]"):
        plot_symbolic_code(x[:50], code, tmp_path / "b.png")
