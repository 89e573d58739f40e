"""fused_recurrent_gla: the Triton decode kernels against the float64 reference and ``chunk_gla`` (CPU interpreter
at small sizes, GPU at a decode shape)."""

from functools import partial
from itertools import pairwise

import lrnn.core.scan.gla.fused_recurrent as fused_recurrent
import pytest
import torch
from lrnn.core.scan.gla import chunk_gla, chunk_gla_reference, fused_recurrent_gla
from scan_testing import relative_error
from test_chunk_gla import TOLERANCE, assert_close_to, make_inputs, reference, run

# (T, gate, B, H, K, V, reverse): every T, gate form, size and direction; K = 48, V = 100 spans two value blocks,
# the second partial, and a key tile with masked keys. T = 33 runs one program per step loop to stay fast.
CASES = [
    (1, "per_key", 2, 2, 48, 100, False),
    (1, "fixed", 2, 2, 32, 32, True),
    (2, "per_head", 2, 2, 48, 100, True),
    (2, "none", 2, 2, 32, 32, False),
    (7, "per_key", 2, 2, 32, 32, True),
    (7, "per_head", 2, 1, 32, 32, False),
    (7, "fixed", 1, 2, 48, 100, False),
    (7, "none", 1, 2, 48, 100, True),
    (33, "per_key", 1, 1, 48, 100, True),
    (33, "per_head", 1, 1, 32, 32, True),
    (33, "fixed", 1, 1, 32, 32, False),
]


def on(device, inputs, cotangents):
    return {n: None if t is None else t.to(device) for n, t in inputs.items()}, tuple(c.to(device) for c in cotangents)


@pytest.fixture
def triton_backend(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")


@pytest.mark.usefixtures("triton_backend")
@pytest.mark.parametrize("T,gate,B,H,K,V,reverse", CASES)
def test_kernel_matches_reference(device, T, gate, B, H, K, V, reverse):
    """o, the final state and the gradients of q, k, v, g and the initial state, float32."""
    inputs, cotangents = make_inputs(B, T, H, K, V, gate, seed=T + K)
    result = run(fused_recurrent_gla, *on(device, inputs, cotangents), torch.float32, reverse=reverse)
    assert result["o"].dtype == torch.float32 and result["ht"].dtype == torch.float32
    assert_close_to(result, reference(inputs, cotangents, torch.float32, reverse=reverse), TOLERANCE[torch.float32])


@pytest.mark.usefixtures("triton_backend")
def test_bfloat16_inputs(device):
    inputs, cotangents = make_inputs(1, 7, 2, 32, 48, "per_key", seed=1)
    result = run(fused_recurrent_gla, *on(device, inputs, cotangents), torch.bfloat16)
    assert result["o"].dtype == torch.bfloat16 and result["dq"].dtype == torch.bfloat16
    assert result["ht"].dtype == torch.float32 and result["dinitial_state"].dtype == torch.float32
    assert_close_to(result, reference(inputs, cotangents, torch.bfloat16), TOLERANCE[torch.bfloat16])


@pytest.mark.parametrize("gate,reverse", [("per_key", False), ("per_head", True), ("fixed", False), ("none", True)])
def test_kernel_matches_chunk_gla(monkeypatch, device, gate, reverse):
    """The same inputs through the chunked face of ``chunk_gla`` and the fused kernel, gradients included."""
    inputs, cotangents = make_inputs(1, 20, 2, 16, 24, gate, seed=7)
    inputs, cotangents = on(device, inputs, cotangents)
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    expected = run(chunk_gla, inputs, cotangents, torch.float32, reverse=reverse)
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    result = run(fused_recurrent_gla, inputs, cotangents, torch.float32, reverse=reverse)
    assert_close_to(result, {name: t.double() for name, t in expected.items()}, 1e-5)


def in_pieces(q, k, v, g, initial_state, output_final_state, reverse, cuts):
    """``fused_recurrent_gla`` over the spans between ``cuts``, each starting from the state the previous span left
    (spans taken from the end with ``reverse``)."""
    spans = list(pairwise(cuts))
    outputs, state = {}, initial_state
    for bos, eos in reversed(spans) if reverse else spans:
        g_span = g if g is None or g.dim() == 1 else g[:, bos:eos]
        outputs[bos], state = fused_recurrent_gla(
            q[:, bos:eos], k[:, bos:eos], v[:, bos:eos], g_span, None, state, output_final_state, reverse
        )
    return torch.cat([outputs[bos] for bos, _ in spans], 1), state


@pytest.mark.usefixtures("triton_backend")
@pytest.mark.parametrize("gate,reverse", [("per_key", False), ("fixed", True)])
def test_streaming_equals_one_call(device, gate, reverse):
    """Decoding 1, 2, 4 and 3 steps with the state handed on gives one call's outputs, final state and gradients."""
    inputs, cotangents = make_inputs(2, 10, 2, 16, 8, gate, seed=8)
    inputs, cotangents = on(device, inputs, cotangents)
    cuts = [0, 1, 3, 7, 10]
    streamed = run(partial(in_pieces, cuts=cuts), inputs, cotangents, torch.float32, reverse=reverse)
    whole = run(fused_recurrent_gla, inputs, cotangents, torch.float32, reverse=reverse)
    assert_close_to(streamed, {name: t.double() for name, t in whole.items()}, 1e-5)


@pytest.mark.usefixtures("triton_backend")
def test_without_initial_or_final_state(device):
    """No initial state in, no final state out: only o's gradient flows (no ``dht``, no ``dh0``)."""
    inputs, (do, _) = make_inputs(1, 5, 2, 16, 24, "per_head", seed=6)
    del inputs["initial_state"]
    leaves = {name: t.float().to(device).requires_grad_() for name, t in inputs.items()}
    o, final_state = fused_recurrent_gla(**leaves)
    assert final_state is None
    grads = torch.autograd.grad((o * do.float().to(device)).sum(), list(leaves.values()))
    ref = {name: t.clone().requires_grad_() for name, t in inputs.items()}
    o_ref, _ = chunk_gla_reference(**ref)
    ref_grads = torch.autograd.grad((o_ref * do).sum(), list(ref.values()))
    for value, expected in zip((o, *grads), (o_ref, *ref_grads), strict=True):
        assert relative_error(value, expected) < TOLERANCE[torch.float32]


def test_cpu_default_is_the_pytorch_loop(monkeypatch):
    """Without ``LRNN_SCAN_BACKEND`` CPU tensors run the sequential loop, and float64 inputs stay on it even under
    ``triton``."""
    monkeypatch.delenv("LRNN_SCAN_BACKEND", raising=False)
    inputs, _ = make_inputs(2, 3, 2, 4, 5, "per_key")
    o, ht = fused_recurrent_gla(**inputs, scale=0.3, output_final_state=True)
    o_ref, ht_ref = chunk_gla_reference(**inputs, scale=0.3, output_final_state=True)
    assert torch.equal(o, o_ref) and torch.equal(ht, ht_ref)
    assert fused_recurrent_gla(**inputs)[1] is None
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    assert torch.equal(fused_recurrent_gla(**inputs, scale=0.3)[0], o_ref)


@pytest.mark.gpu
def test_cuda_default_is_the_kernel(monkeypatch):
    monkeypatch.delenv("LRNN_SCAN_BACKEND", raising=False)
    calls = []
    kernel = fused_recurrent.FusedRecurrentGLAFunction.apply
    monkeypatch.setattr(fused_recurrent.FusedRecurrentGLAFunction, "apply", lambda *a: calls.append(1) or kernel(*a))
    inputs, _ = make_inputs(2, 3, 2, 4, 5, "per_key")
    fused_recurrent_gla(**{name: t.float().cuda() for name, t in inputs.items()})
    assert calls == [1]


@pytest.mark.usefixtures("triton_backend")
def test_kernel_needs_cuda_or_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q = torch.rand(1, 2, 1, 4)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        fused_recurrent_gla(q, q, q)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(k=torch.rand(2, 5, 3, 5)), ValueError, r"q and k.*\(2, 5, 3, 4\).*\(2, 5, 3, 5\)"),
        (dict(g=torch.rand(2, 5, 4)), ValueError, r"g must be per key \(2, 5, 3, 4\).*got \(2, 5, 4\)"),
        (dict(initial_state=torch.rand(2, 3, 6, 4)), ValueError, r"initial_state.*\(2, 3, 4, 6\).*\(2, 3, 6, 4\)"),
        (dict(scale="0.5"), TypeError, "scale must be a real number"),
    ],
)
def test_clear_errors(kwargs, error, message):
    inputs = dict(q=torch.rand(2, 5, 3, 4), k=torch.rand(2, 5, 3, 4), v=torch.rand(2, 5, 3, 6))
    with pytest.raises(error, match=message):
        fused_recurrent_gla(**{**inputs, **kwargs})


@pytest.mark.gpu
@pytest.mark.usefixtures("triton_backend")
@pytest.mark.parametrize("T", [1, 16])
@pytest.mark.parametrize("dtype,gate", [(torch.float32, "per_key"), (torch.bfloat16, "per_head")])
def test_decode_shape_on_gpu(T, dtype, gate):
    """A decode batch: 16 sequences, 8 heads of K = V = 128, one step or 16, from a cached state."""
    inputs, cotangents = make_inputs(16, T, 8, 128, 128, gate, seed=T)
    result = run(fused_recurrent_gla, *on("cuda", inputs, cotangents), dtype)
    assert_close_to(result, reference(inputs, cotangents, dtype), TOLERANCE[dtype])
