"""chunk_gla: the chunked PyTorch face and the step form against the sequential float64 reference."""

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from lrnn.core.scan.backend import accumulation_dtype
from lrnn.core.scan.gla import chunk_gla, chunk_gla_reference, chunk_gla_step, chunked
from scan_testing import relative_error

GATE_SHAPES = {"per_key": "BTHK", "per_head": "BTH", "fixed": "H", "none": None}
# float64 rounding gives about 1e-15 here, on every thread count and CPU capability tried; one CI machine gave 7e-11 on
# o and the gradients (not reproduced). 1e-9 still fails any float32 step (about 1e-7) and any wrong term.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 5e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def make_inputs(B, T, H, K, V, gate, normalizer=1.0, seed=0, sequences=None):
    """fla's recipe in float64: ``q, k, v, h0 ~ randn``, ``g = logsigmoid(randn) / normalizer`` in the gate's
    form; and the cotangents ``do [B, T, H, V]``, ``dht [N, H, K, V]``."""
    gen = torch.Generator().manual_seed(seed)
    sizes = dict(B=B, T=T, H=H, K=K)
    randn = lambda *shape: torch.randn(shape, generator=gen, dtype=torch.float64)
    form = GATE_SHAPES[gate]
    g = None if form is None else F.logsigmoid(randn(*(sizes[d] for d in form))) / normalizer
    n = B if sequences is None else sequences
    inputs = dict(q=randn(B, T, H, K), k=randn(B, T, H, K), v=randn(B, T, H, V), g=g, initial_state=randn(n, H, K, V))
    return inputs, (randn(B, T, H, V), randn(n, H, K, V))


def run(fn, inputs, cotangents, dtype, **kwargs):
    """``o``, the final state and the gradients of every input through ``(o * do).sum() + (ht * dht).sum()``;
    ``q, k, v, g`` are cast to ``dtype``, the initial state to its accumulation dtype."""
    leaves = {
        name: t.to(accumulation_dtype(dtype) if name == "initial_state" else dtype).requires_grad_()
        for name, t in inputs.items()
        if t is not None
    }
    o, ht = fn(**{**inputs, **leaves}, output_final_state=True, **kwargs)
    do, dht = cotangents
    loss = (o.to(do.dtype) * do).sum() + (ht.to(dht.dtype) * dht).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return {"o": o, "ht": ht, **{f"d{name}": grad for name, grad in zip(leaves, grads, strict=True)}}


def reference(inputs, cotangents, dtype, **kwargs):
    """The float64 loop on the inputs as ``dtype`` rounds them."""
    rounded = {name: None if t is None else t.to(dtype).to(torch.float64) for name, t in inputs.items()}
    if dtype != torch.float64:
        rounded["initial_state"] = inputs["initial_state"].float().double()
    return run(chunk_gla_reference, rounded, cotangents, torch.float64, **kwargs)


def fixed_gate_scale(inputs, cotangents, dtype, **kwargs):
    """The summed magnitudes ``[H]`` of the per-position terms that make a fixed gate's gradient.

    ``dg`` of a gate shared by every position is a sum of ``B T K`` terms of both signs per head, so its own size
    can be far below its terms'; its error is judged against theirs (the gradient of the gate expanded per key).
    """
    B, T, H, K = inputs["k"].shape
    per_key = {**inputs, "g": inputs["g"][:, None].expand(B, T, H, K).clone()}
    return reference(per_key, cotangents, dtype, **kwargs)["dg"].abs().sum((0, 1, 3))


def assert_close_to(result, expected, tol, gate_scale=None):
    """Relative errors below ``tol``; with ``gate_scale`` (``fixed_gate_scale``) ``dg`` is measured against it."""
    errors = {name: relative_error(result[name], expected[name]) for name in expected}
    if gate_scale is not None:
        errors["dg"] = float(((result["dg"].detach().cpu().double() - expected["dg"]).abs() / gate_scale).max())
    assert max(errors.values()) < tol, errors


def use_chunks(monkeypatch, chunk, subchunk):
    monkeypatch.setattr(chunked, "CHUNK", chunk)
    monkeypatch.setattr(chunked, "SUBCHUNK", subchunk)


GATES = [("per_key", 0.1), ("per_key", 1), ("per_key", 10), ("per_head", 0.1), ("per_head", 1), ("per_head", 10),
         ("fixed", 1), ("none", 1)]  # fmt: skip
# (T, K, V, CHUNK, SUBCHUNK): one step; several small chunks with a partial last one; three default chunks.
SIZES = [(1, 48, 100, 64, 8), (63, 32, 32, 16, 4), (130, 48, 100, 64, 8)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("T,K,V,chunk,subchunk", SIZES)
@pytest.mark.parametrize("gate,normalizer", GATES)
def test_chunked_face_matches_reference(monkeypatch, gate, normalizer, T, K, V, chunk, subchunk, reverse):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    use_chunks(monkeypatch, chunk, subchunk)
    inputs, cotangents = make_inputs(2, T, 2, K, V, gate, normalizer, seed=T + K)
    for dtype in (torch.float64, torch.float32):
        result = run(chunk_gla, inputs, cotangents, dtype, reverse=reverse)
        assert result["o"].dtype == dtype and result["ht"].dtype == accumulation_dtype(dtype)
        scale = fixed_gate_scale(inputs, cotangents, dtype, reverse=reverse) if gate == "fixed" else None
        assert_close_to(result, reference(inputs, cotangents, dtype, reverse=reverse), TOLERANCE[dtype], scale)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("gate", ["per_key", "per_head"])
def test_low_precision_inputs(monkeypatch, gate, dtype):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    inputs, cotangents = make_inputs(2, 100, 2, 32, 48, gate, normalizer=1, seed=1)
    result = run(chunk_gla, inputs, cotangents, dtype)
    assert result["o"].dtype == dtype and result["ht"].dtype == torch.float32
    assert_close_to(result, reference(inputs, cotangents, dtype), TOLERANCE[dtype])


@pytest.mark.parametrize("gate", ["per_key", "per_head"])
def test_strong_gates_stay_finite(monkeypatch, gate):
    """Log gates down to -30 per step (cumulative -1920 over a chunk) neither overflow nor lose accuracy."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    inputs, cotangents = make_inputs(1, 130, 2, 16, 8, gate, seed=2)
    inputs["g"] = -30 * torch.rand(inputs["g"].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    result = run(chunk_gla, inputs, cotangents, torch.float32)
    assert all(torch.isfinite(t).all() for t in result.values())
    assert_close_to(result, reference(inputs, cotangents, torch.float32), TOLERANCE[torch.float32])


def per_sequence_reference(q, k, v, g, initial_state, output_final_state, reverse, cu_seqlens):
    """Each sequence through the reference on its own, the outputs concatenated."""
    outputs, final_states = [], []
    for n, (bos, eos) in enumerate(pairwise(cu_seqlens.tolist())):
        if bos == eos:
            final_states.append(initial_state[n : n + 1])
            continue
        q_n, k_n, v_n, g_n = (x if x is None or x.dim() == 1 else x[:, bos:eos] for x in (q, k, v, g))
        o, ht = chunk_gla_reference(q_n, k_n, v_n, g_n, None, initial_state[n : n + 1], True, reverse)
        outputs.append(o)
        final_states.append(ht)
    return torch.cat(outputs, 1), torch.cat(final_states)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("gate", list(GATE_SHAPES))
def test_varlen_matches_per_sequence_loop(monkeypatch, gate, reverse):
    use_chunks(monkeypatch, 16, 4)
    cu_seqlens = torch.tensor([0, 0, 1, 40, 107])
    inputs, cotangents = make_inputs(1, 107, 2, 12, 20, gate, seed=4, sequences=4)
    expected = run(per_sequence_reference, inputs, cotangents, torch.float64, reverse=reverse, cu_seqlens=cu_seqlens)
    for backend, dtype in (("reference", torch.float64), ("torch", torch.float64), ("torch", torch.float32)):
        monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
        result = run(chunk_gla, inputs, cotangents, dtype, reverse=reverse, cu_seqlens=cu_seqlens)
        assert_close_to(result, expected, TOLERANCE[dtype])


@pytest.mark.parametrize("gate", list(GATE_SHAPES))
def test_step_form_matches_parallel_form(monkeypatch, gate):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    use_chunks(monkeypatch, 16, 4)
    inputs, _ = make_inputs(2, 37, 3, 8, 5, gate, seed=5)
    q, k, v, g, h0 = (None if t is None else t.float() for t in inputs.values())
    o, ht = chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True)
    state, steps = h0, []
    for t in range(37):
        g_t = None if g is None or g.dim() == 1 else g[:, t]
        o_t, state = chunk_gla_step(q[:, t], k[:, t], v[:, t], g if g is not None and g.dim() == 1 else g_t, state)
        steps.append(o_t)
    torch.testing.assert_close(torch.stack(steps, 1), o, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, ht, rtol=1e-5, atol=1e-5)
    o_0, state_0 = chunk_gla_step(q[:, 0], k[:, 0], v[:, 0])
    torch.testing.assert_close(state_0, k[:, 0, :, :, None] * v[:, 0, :, None, :])
    torch.testing.assert_close(o_0, chunk_gla(q[:, :1], k[:, :1], v[:, :1])[0][:, 0])


@pytest.mark.parametrize("gate", list(GATE_SHAPES))
def test_step_runs_the_fused_recurrent_kernel_with_the_triton_backend(monkeypatch, device, gate):
    """On CUDA a decoding step is fused_recurrent_gla's kernel over one step; it agrees with the PyTorch step."""
    inputs, _ = make_inputs(2, 4, 3, 8, 5, gate, seed=6)
    q, k, v, g, h0 = (None if t is None else t.float().to(device) for t in inputs.values())
    results = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
        state, outputs = h0, []
        for t in range(4):
            g_t = g if g is None or g.dim() == 1 else g[:, t]
            o_t, state = chunk_gla_step(q[:, t], k[:, t], v[:, t], g_t, state)
            outputs.append(o_t)
        results[backend] = (torch.stack(outputs, 1), state)
    assert results["triton"][1].dtype == torch.float32
    for fused, plain in zip(results["triton"], results["torch"], strict=True):
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


def test_reference_backend_is_forced_by_env(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "reference")
    inputs, _ = make_inputs(2, 9, 2, 4, 3, "per_key")
    o, ht = chunk_gla(**inputs, scale=0.3, output_final_state=True)
    o_ref, ht_ref = chunk_gla_reference(**inputs, scale=0.3, output_final_state=True)
    assert torch.equal(o, o_ref) and torch.equal(ht, ht_ref)


def test_final_state_is_none_unless_asked(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    q = torch.rand(1, 3, 2, 4)
    assert chunk_gla(q, q, q)[1] is None


def _inputs(B=2, T=5, H=3, K=4, V=6, **changes):
    tensors = dict(q=torch.rand(B, T, H, K), k=torch.rand(B, T, H, K), v=torch.rand(B, T, H, V))
    return {**tensors, **changes}


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (_inputs(k=torch.rand(2, 5, 3, 5)), ValueError, r"q and k.*\(2, 5, 3, 4\).*\(2, 5, 3, 5\)"),
        (_inputs(v=torch.rand(2, 4, 3, 6)), ValueError, r"v \[B, T, H, V\] must match.*\(2, 4, 3, 6\)"),
        (_inputs(q=torch.rand(2, 5, 12)), ValueError, r"q must be \[B, T, H, K\], got shape \(2, 5, 12\)"),
        (_inputs(g=torch.rand(2, 5, 4)), ValueError, r"g must be per key \(2, 5, 3, 4\).*got \(2, 5, 4\)"),
        (_inputs(q=torch.ones(2, 5, 3, 4, dtype=torch.int64)), TypeError, "q must be floating"),
        (_inputs(g=torch.ones(3, dtype=torch.int32)), TypeError, "g must be a real floating-point"),
        (_inputs(v=torch.rand(2, 5, 3, 6, dtype=torch.float64)), TypeError, "one dtype"),
        (_inputs(T=0), ValueError, "must not be empty"),
        (_inputs(initial_state=torch.rand(2, 3, 6, 4)), ValueError, r"initial_state.*\(2, 3, 4, 6\).*\(2, 3, 6, 4\)"),
        (_inputs(scale="0.5"), TypeError, "scale must be a real number"),
        (_inputs(cu_seqlens=torch.tensor([0, 5])), ValueError, "B = 1"),
        (_inputs(B=1, cu_seqlens=torch.tensor([1, 5])), ValueError, r"start at 0.*\[1, 5\]"),
        (_inputs(B=1, cu_seqlens=torch.tensor([0, 3, 2, 5])), ValueError, "never decrease"),
        (_inputs(B=1, cu_seqlens=torch.tensor([0, 4])), ValueError, r"end at T = 5"),
        (_inputs(B=1, cu_seqlens=torch.tensor([0.0, 5.0])), TypeError, "cu_seqlens must be an int64"),
        (_inputs(B=1, cu_seqlens=torch.tensor([0, 2, 5]), initial_state=torch.rand(1, 3, 4, 6)), ValueError,
         r"initial_state must have shape \(2, 3, 4, 6\)"),
        (_inputs(g=torch.rand(3, device="meta")), ValueError, "g is on meta but q is on cpu"),
        (_inputs(v=torch.rand(2, 5, 3, 6, device="meta")), ValueError, "one device"),
    ],
)  # fmt: skip
def test_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        chunk_gla(**kwargs)


def test_step_errors():
    q = torch.rand(2, 3, 4)
    with pytest.raises(ValueError, match=r"v \[B, H, V\] must match"):
        chunk_gla_step(q, q, torch.rand(3, 3, 5))
    with pytest.raises(ValueError, match=r"g_t must be per key \(2, 3, 4\), per head \(2, 3\) or fixed"):
        chunk_gla_step(q, q, q, torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"state must have shape \(2, 3, 4, 4\)"):
        chunk_gla_step(q, q, q, state=torch.rand(2, 3, 4))


@pytest.mark.gpu
@pytest.mark.parametrize("gate", ["per_key", "per_head"])
def test_chunked_face_runs_on_cuda(gate):
    inputs, cotangents = make_inputs(2, 300, 4, 48, 100, gate, seed=4)
    on_gpu = {name: None if t is None else t.cuda() for name, t in inputs.items()}
    result = run(chunk_gla, on_gpu, tuple(c.cuda() for c in cotangents), torch.float32)
    assert_close_to(result, reference(inputs, cotangents, torch.float32), 5e-5)
