"""DSR models: step against hand-written formulas, Jacobians against autograd, fixed points, the authors' model."""

from pathlib import Path

import numpy as np
import pytest
import torch
from lrnn.timeseries.dsr import (
    ALRNN,
    PLRNN,
    AffineObservation,
    ClippedShallowPLRNN,
    ShallowPLRNN,
    bits_to_ids,
    condition_number_penalty,
    ids_to_bits,
    plot_symbolic_code,
    symbolic_code,
    symbolic_code_from_bits,
)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "dsr"
needs_data = pytest.mark.skipif(
    not (DATA / "lorenz_m20_p2").is_file() or not (DATA / "lorenz63.npy").is_file(),
    reason=f"reference data not found at {DATA} (lorenz_m20_p2, lorenz63.npy)",
)


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (h's included) nonzero random values so that every term is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _models():
    torch.manual_seed(0)
    return {
        "alrnn": ALRNN(8, 3, 2),
        "plrnn": PLRNN(6, 2),
        "shallow": ShallowPLRNN(5, 7, 3),
        "clipped": ClippedShallowPLRNN(5, 4),
        "alrnn_input": ALRNN(8, 2, 3, input_dim=2),
    }


def _hand_step(name: str, m, z: np.ndarray) -> np.ndarray:
    """Independent numpy formulas of each map (per sample, explicit loops over units where the ReLU acts)."""
    p = {k: v.detach().double().numpy() for k, v in m.named_parameters()}
    out = np.empty_like(z)
    for b in range(z.shape[0]):
        x = z[b]
        if name.startswith("alrnn"):
            phi = x.copy()
            for i in range(m.M - m.P, m.M):
                phi[i] = max(0.0, x[i])
            out[b] = p["A"] * x + p["W"] @ phi + p["h"]
        elif name == "plrnn":
            W = p["W"] - np.diag(np.diag(p["W"]))
            out[b] = p["A"] * x + W @ np.maximum(x, 0) + p["h"]
        elif name == "shallow":
            out[b] = p["A"] * x + p["W1"] @ np.maximum(p["W2"] @ x + p["h2"], 0) + p["h1"]
        else:
            u = p["W2"] @ x
            out[b] = p["A"] * x + p["W1"] @ (np.maximum(u + p["h2"], 0) - np.maximum(u, 0)) + p["h1"]
    return out


@pytest.mark.parametrize("name", ["alrnn", "plrnn", "shallow", "clipped", "alrnn_input"])
def test_step_matches_hand_formula_and_jacobian_matches_autograd(name):
    m = _perturb(_models()[name]).double()
    z = torch.randn(16, m.M, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(m.step(z).detach().numpy(), _hand_step(name, m, z.numpy()), rtol=1e-12, atol=1e-12)
    J = m.jacobian(z)
    assert J.shape == (16, m.M, m.M)
    for b in range(z.shape[0]):
        J_ad = torch.func.jacrev(lambda v: m.step(v[None])[0])(z[b])
        torch.testing.assert_close(J[b], J_ad, rtol=1e-12, atol=1e-12)
    # inside its region the map is affine: F(z) = J_d z + c_d
    J_d, c_d = m.region_affine(m.subregion(z))
    torch.testing.assert_close(m.step(z), (J_d @ z[..., None])[..., 0] + c_d)


def test_external_input_and_generate():
    m = _perturb(_models()["alrnn_input"]).double()
    z0 = torch.randn(3, 8, dtype=torch.float64)
    s = torch.randn(3, 5, 2, dtype=torch.float64)
    orbit = m.generate(z0, 5, s=s)
    assert orbit.shape == (3, 5, 8)
    torch.testing.assert_close(orbit[:, 0], z0)
    z = z0
    for t in range(1, 5):
        z = torch.from_numpy(_hand_step("alrnn", m, z.detach().numpy())) + s[:, t] @ m.C.detach().T
        torch.testing.assert_close(orbit[:, t], z)
    torch.testing.assert_close(m.step(z0, s[:, 1]), orbit[:, 1])


@pytest.mark.parametrize("name", ["alrnn", "plrnn", "clipped"])
def test_fixed_points_are_fixed_and_in_their_region(name):
    m = _perturb(_models()[name], seed=3).double()
    fp = m.fixed_points()
    assert fp.bits.shape == (2**m.n_bits, m.n_bits) and fp.z.shape == (2**m.n_bits, m.M)
    z = fp.z
    # every solution is a fixed point of its region's affine map
    J, c = m.region_affine(fp.bits)
    torch.testing.assert_close((J @ z[..., None])[..., 0] + c, z)
    # the self-consistent ones are fixed points of the model itself and lie in their region
    real = fp.in_region
    assert real.any()
    torch.testing.assert_close(m.step(z[real]), z[real])
    assert torch.equal(m.subregion(z[real]), fp.bits[real])
    assert torch.equal(fp.stable, fp.spectral_radius < 1)
    torch.testing.assert_close(fp.spectral_radius, torch.linalg.eigvals(J).abs().amax(-1))


def test_parameter_shapes_counts_and_init():
    torch.manual_seed(0)
    m = ALRNN(20, 2, 3)
    shapes = {k: tuple(v.shape) for k, v in m.named_parameters()}
    assert shapes == {"A": (20,), "W": (20, 20), "h": (20,), "observation.L": (17, 3)}
    assert sum(p.numel() for p in m.parameters()) == 20 + 400 + 20 + 51
    assert torch.all(m.h == 0) and 0 < m.A.min() and m.A.max() <= 1
    assert 0.005 < m.W.std() < 0.015
    p = PLRNN(6)
    assert torch.all(torch.diagonal(p.W) == 0) and p.observation.L.shape == (0, 6)
    s = ShallowPLRNN(4, 10, 2, observation="affine")
    shapes = {k: tuple(v.shape) for k, v in s.named_parameters()}
    want = {"A": (4,), "W1": (4, 10), "W2": (10, 4), "h1": (4,), "h2": (10,), "observation.B": (2, 4)}
    assert shapes == {**want, "observation.b": (2,)}
    assert torch.all(s.h2 == 0) and ClippedShallowPLRNN(4, 10).h2.abs().max() > 0
    assert ClippedShallowPLRNN(4, 10).n_bits == 20
    p.step(torch.randn(3, 6)).square().sum().backward()
    assert torch.all(torch.diagonal(p.W.grad) == 0) and p.W.grad.abs().sum() > 0  # W stays off-diagonal


def test_fixed_points_of_float32_model_for_given_regions():
    torch.manual_seed(2)
    m = ClippedShallowPLRNN(3, 5)
    orbit = m.generate(torch.randn(1, 3), 50)[0].detach()
    fp = m.fixed_points(m.subregion(orbit[:4]))
    assert fp.z.shape == (4, 3) and fp.z.dtype == torch.float64 and fp.in_region.dtype == torch.bool


def test_observation_models():
    torch.manual_seed(0)
    m = ALRNN(10, 2, 3)
    x = torch.randn(4, 3)
    z1 = m.init_state(x)
    torch.testing.assert_close(z1[:, :3], x)
    torch.testing.assert_close(z1[:, 3:], x @ m.observation.L.T)
    torch.testing.assert_close(m.readout(z1), x)
    obs = AffineObservation(3, 5)
    torch.testing.assert_close(obs(obs.init_state(x)), x, rtol=1e-5, atol=1e-5)  # B B^+ = I for full row rank
    B = torch.diag(torch.tensor([4.0, 2.0, 1.0]))
    assert condition_number_penalty(B, 0.5).item() == pytest.approx(0.5 * 9.0)
    assert condition_number_penalty(torch.eye(3)).item() == 0.0


def test_symbolic_code_counts_and_transitions():
    bits = torch.tensor([[1, 0], [1, 0], [0, 1], [1, 0], [1, 1], [1, 1], [1, 1], [1, 1]], dtype=torch.bool)
    code = symbolic_code_from_bits(bits)
    assert code.bits.tolist() == [[True, True], [True, False], [False, True]]
    assert code.counts.tolist() == [4, 3, 1]
    assert code.symbols.tolist() == [1, 1, 2, 1, 0, 0, 0, 0]
    assert code.transitions.tolist() == [[3, 0, 0], [1, 1, 1], [0, 1, 0]]
    assert code.transition_probabilities[1].tolist() == pytest.approx([1 / 3] * 3)
    assert code.connectome.sum().item() == pytest.approx(1.0)
    ids = bits_to_ids(code.bits)
    assert ids.tolist() == [3, 2, 1] and torch.equal(ids_to_bits(ids, 2), code.bits)


def test_bad_inputs():
    m = ALRNN(8, 2, 3)
    with pytest.raises(ValueError, match="M=8"):
        m.step(torch.zeros(2, 7))
    with pytest.raises(ValueError, match=r"\[batch, M\]"):
        m.step(torch.zeros(8))
    with pytest.raises(TypeError, match="floating"):
        m.step(torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        m.jacobian(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="steps"):
        m.generate(torch.zeros(1, 8), 0)
    with pytest.raises(ValueError, match="no external input"):
        m.step(torch.zeros(2, 8), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="N=3"):
        m.init_state(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="P must be"):
        ALRNN(8, 9, 3)
    with pytest.raises(ValueError, match="N \\+ P <= M"):
        ALRNN(4, 2, 3)
    with pytest.raises(ValueError, match="observation"):
        PLRNN(4, observation="linear")
    with pytest.raises(ValueError, match="pass bits"):
        PLRNN(20).fixed_points()
    with pytest.raises(ValueError, match="lacks keys"):
        ALRNN.from_reference_state_dict({"A": torch.zeros(3)}, P=1)
    with pytest.raises(ValueError, match="B \\[N, M\\]"):
        ALRNN.from_reference_state_dict(
            {"A": torch.zeros(4), "W": torch.zeros(4, 4), "h": torch.zeros(4), "B": torch.zeros(2, 5)}, P=1
        )
    with pytest.raises(ValueError, match="n_bits=2"):
        m.region_affine(torch.zeros(3, 4, dtype=torch.bool))


@needs_data
def test_reference_lorenz_model_orbit_and_three_subregions(tmp_path):
    sd = torch.load(DATA / "lorenz_m20_p2", weights_only=True)
    model = ALRNN.from_reference_state_dict(sd, P=2)
    x = np.load(DATA / "lorenz63.npy")
    x1 = torch.from_numpy(x[:1]).float()
    z1 = model.init_state(x1)

    # their initialisation, by hand: z = x B, then the first N units set to x
    A, W, h, B = (sd[k].double().numpy() for k in ("A", "W", "h", "B"))
    z = x[:1].astype(np.float64) @ B
    z[:, :3] = x[:1]
    np.testing.assert_allclose(z1.detach().numpy(), z, rtol=1e-6, atol=1e-6)

    # the orbit their parameters define, by an independent step loop in float64
    steps = 200
    ref = np.empty((steps, 20))
    ref[0] = z[0]
    for t in range(1, steps):
        phi = ref[t - 1].copy()
        phi[-2:] = np.maximum(phi[-2:], 0)
        ref[t] = A * ref[t - 1] + W @ phi + h
    with torch.no_grad():
        orbit = model.double().generate(torch.from_numpy(z), steps)[0].numpy()
    np.testing.assert_allclose(orbit, ref, rtol=1e-10, atol=1e-10)

    # a long free-running orbit visits exactly 3 of the 4 linear subregions
    code, long_orbit = symbolic_code(model.float(), z1.detach(), steps=100_000)
    assert long_orbit.shape == (100_000, 20) and torch.isfinite(long_orbit).all()
    assert code.bits.shape[0] == 3 and code.counts.sum().item() == 100_000
    assert code.counts.min().item() > 10_000
    assert code.fixed_points.z.shape == (3, 20)
    thinned = symbolic_code_from_bits(code.bits[code.symbols[::10]])
    png = plot_symbolic_code(model.readout(long_orbit[::10]), thinned, tmp_path / "code.png")
    assert png.stat().st_size > 10_000
