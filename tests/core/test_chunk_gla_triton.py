"""chunk_gla: the Triton face against the float64 reference (CPU interpreter at small tiles, GPU at scale)."""

import pytest
import torch
import torch.nn.functional as F
from lrnn.core.scan.backend import scan_backend
from lrnn.core.scan.gla import chunk_gla, chunk_gla_reference
from lrnn.core.scan.gla import triton as triton_face
from scan_testing import relative_error
from test_chunk_gla import TOLERANCE, assert_close_to, fixed_gate_scale, make_inputs, reference, run

ON_GPU = torch.cuda.is_available()
# Under the interpreter: 32-step chunks of two 16-step sub-chunks and 32-wide tiles, so T = 63 and 130 have several
# chunks with a partial last one, and K = 48, V = 100 partial key and value tiles.
SMALL_TILES = {"BT": 32, "BC": 16, "BK": 32, "BV": 32, "BV_O": 64, "num_warps": 1}

# (gate, normalizer, T, K, V, reverse): every gate form and strength, each size and direction several times.
CASES = [
    ("per_key", 0.1, 130, 48, 100, False),
    ("per_key", 1, 63, 32, 32, True),
    ("per_key", 10, 1, 48, 100, False),
    ("per_key", 1, 130, 48, 100, True),
    ("per_head", 0.1, 63, 32, 32, False),
    ("per_head", 1, 130, 32, 32, True),
    ("per_head", 10, 63, 32, 32, True),
    ("fixed", 1, 63, 48, 100, False),
    ("fixed", 1, 1, 32, 32, True),
    ("none", 1, 130, 32, 32, False),
    ("none", 1, 63, 48, 100, True),
]


@pytest.fixture(autouse=True)
def _triton_backend(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    if not ON_GPU:
        monkeypatch.setattr(triton_face, "launch_config", lambda key_dim, value_dim: SMALL_TILES)


@pytest.mark.parametrize("gate,normalizer,T,K,V,reverse", CASES)
def test_triton_face_matches_reference(device, gate, normalizer, T, K, V, reverse):
    """o, the final state and the gradients of q, k, v, g and the initial state, float32."""
    inputs, cotangents = make_inputs(2, T, 2, K, V, gate, normalizer, seed=T + K)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    result = run(chunk_gla, on_device, tuple(c.to(device) for c in cotangents), torch.float32, reverse=reverse)
    assert result["o"].dtype == torch.float32 and result["ht"].dtype == torch.float32
    expected = reference(inputs, cotangents, torch.float32, reverse=reverse)
    scale = fixed_gate_scale(inputs, cotangents, torch.float32, reverse=reverse) if gate == "fixed" else None
    assert_close_to(result, expected, TOLERANCE[torch.float32], gate_scale=scale)


def test_dq_dk_kernel_with_its_own_key_tile(device, monkeypatch):
    """``BK_DQK`` (the dq/dk kernel's key tile, a benchmark knob) below ``BK`` gives the same gradients."""
    tiles = triton_face.launch_config
    monkeypatch.setattr(
        triton_face, "launch_config", lambda key_dim, value_dim: {**tiles(key_dim, value_dim), "BK_DQK": 16}
    )
    inputs, cotangents = make_inputs(1, 70, 2, 48, 40, "per_key", 1, seed=4)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    result = run(chunk_gla, on_device, tuple(c.to(device) for c in cotangents), torch.float32)
    assert_close_to(result, reference(inputs, cotangents, torch.float32), TOLERANCE[torch.float32])


def test_state_kernels_narrow_their_tiles_when_few_programs(device, monkeypatch):
    """With few sequences x heads the state kernels halve ``BK`` and ``BV`` (``state_tiles``) below the other
    kernels' tiles, and the outputs and gradients stay those of the reference."""
    tiles = triton_face.launch_config
    narrowing = lambda key_dim, value_dim: {**tiles(key_dim, value_dim), "STATE_PROGRAMS": 10**6}  # noqa: E731
    monkeypatch.setattr(triton_face, "launch_config", narrowing)
    assert triton_face.state_tiles(narrowing(48, 40), 48, 40, walks=2) == (16, 16)
    inputs, cotangents = make_inputs(1, 70, 2, 48, 40, "per_key", 1, seed=5)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    result = run(chunk_gla, on_device, tuple(c.to(device) for c in cotangents), torch.float32)
    assert_close_to(result, reference(inputs, cotangents, torch.float32), TOLERANCE[torch.float32])


def test_state_tiles_keep_the_common_tiles_with_enough_programs():
    """At the benchmark's B = 16, T = 2048, H = 16 (1,024 state programs at 64 x 64) the tiles stay; at B = 1 (64
    programs) they halve once, to the 32 x 32 timed on the H100."""
    cfg = {"BK": 64, "BV": 64, "STATE_PROGRAMS": 128}
    assert triton_face.state_tiles(cfg, 128, 128, walks=16 * 16) == (64, 64)
    assert triton_face.state_tiles(cfg, 128, 128, walks=16) == (32, 32)
    assert triton_face.state_tiles({"BK": 64, "BV": 64}, 128, 128, walks=1) == (64, 64)


@pytest.mark.parametrize("reverse", [False, True])
def test_backward_from_the_forwards_scores_equals_recomputing_them(device, monkeypatch, reverse):
    """Where ``keeps_scores`` holds, the backward reads the forward's intra-chunk scores; the gradients are the
    recomputing backward's, bit for bit."""
    key_dim = 64 if ON_GPU else 32  # the smallest K that keeps the scores at each place's chunk (64 / 32 steps)
    inputs, cotangents = make_inputs(1, 40, 2, key_dim, 16, "per_key", 1, seed=6)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    cotangents = tuple(c.to(device) for c in cotangents)
    assert triton_face.keeps_scores(on_device["q"].float(), on_device["v"].float())
    computing = triton_face.intra_chunk_scores
    calls = []
    monkeypatch.setattr(triton_face, "intra_chunk_scores", lambda *args: calls.append(1) or computing(*args))
    kept = run(chunk_gla, on_device, cotangents, torch.float32, reverse=reverse)
    assert len(calls) == 1  # the forward's only
    monkeypatch.setattr(triton_face, "keeps_scores", lambda q, v: False)
    recomputed = run(chunk_gla, on_device, cotangents, torch.float32, reverse=reverse)
    assert len(calls) == 3
    for name, value in kept.items():
        torch.testing.assert_close(value, recomputed[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("dtype,gate", [(torch.bfloat16, "per_key"), (torch.float16, "per_head")])
def test_low_precision_inputs(device, dtype, gate):
    inputs, cotangents = make_inputs(1, 63, 2, 32, 48, gate, seed=1)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    result = run(chunk_gla, on_device, tuple(c.to(device) for c in cotangents), dtype)
    assert result["o"].dtype == dtype and result["dq"].dtype == dtype and result["ht"].dtype == torch.float32
    assert_close_to(result, reference(inputs, cotangents, dtype), TOLERANCE[dtype])


@pytest.mark.parametrize("gate,reverse", [("per_key", False), ("per_head", True)])
def test_strong_gates_stay_finite(device, gate, reverse):
    """Log gates down to -30 per step (-5 is fla's benchmark clamp) neither overflow nor lose accuracy."""
    inputs, cotangents = make_inputs(1, 63, 2, 16, 16, gate, seed=2)
    inputs["g"] = -30 * torch.rand(inputs["g"].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    on_device = {name: t.to(device) for name, t in inputs.items()}
    result = run(chunk_gla, on_device, tuple(c.to(device) for c in cotangents), torch.float32, reverse=reverse)
    assert all(torch.isfinite(t).all() for t in result.values())
    expected = reference(inputs, cotangents, torch.float32, reverse=reverse)
    assert_close_to(result, expected, TOLERANCE[torch.float32])


def test_without_initial_or_final_state(device):
    """No initial state in, no final state out: only o's gradient flows."""
    inputs, (do, _) = make_inputs(1, 40, 2, 16, 24, "per_key", seed=6)
    del inputs["initial_state"]
    leaves = {name: t.float().to(device).requires_grad_() for name, t in inputs.items()}
    o, final_state = chunk_gla(**leaves)
    assert final_state is None
    grads = torch.autograd.grad((o * do.float().to(device)).sum(), list(leaves.values()))
    ref = {name: t.clone().requires_grad_() for name, t in inputs.items()}
    o_ref, _ = chunk_gla_reference(**ref)
    ref_grads = torch.autograd.grad((o_ref * do).sum(), list(ref.values()))
    assert relative_error(o, o_ref) < TOLERANCE[torch.float32]
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        assert relative_error(grad, ref_grad) < TOLERANCE[torch.float32]


@pytest.mark.parametrize(
    "gate,reverse,bounds",
    [("per_key", False, [0, 0, 1, 40, 75]), ("per_head", True, [0, 33, 33, 75]), ("none", True, [0, 75, 75])],
)
def test_varlen_in_the_kernels(device, gate, reverse, bounds):
    """cu_seqlens with empty, one-step and chunk-crossing sequences, read by the kernels themselves (one launch
    sequence for the batch), against the reference's loop over the sequences."""
    cu_seqlens = torch.tensor(bounds, device=device, dtype=torch.int32 if reverse else torch.int64)
    inputs, cotangents = make_inputs(1, 75, 2, 12, 20, gate, seed=4, sequences=len(bounds) - 1)
    on_device = {name: None if t is None else t.to(device) for name, t in inputs.items()}
    kwargs = dict(cu_seqlens=cu_seqlens, reverse=reverse)
    result = run(chunk_gla, on_device, tuple(c.to(device) for c in cotangents), torch.float32, **kwargs)
    expected = reference(inputs, cotangents, torch.float32, **{**kwargs, "cu_seqlens": cu_seqlens.cpu()})
    assert_close_to(result, expected, TOLERANCE[torch.float32])


def test_default_faces(monkeypatch):
    """Without LRNN_SCAN_BACKEND CPU tensors take the chunked PyTorch face and CUDA tensors the Triton kernels."""
    monkeypatch.delenv("LRNN_SCAN_BACKEND")
    monkeypatch.setattr(triton_face, "chunk_gla_triton", lambda *args: pytest.fail("the Triton face ran"))
    q = torch.rand(1, 5, 2, 4)
    chunk_gla(q, q, q)
    assert scan_backend(torch.device("cuda")) == "triton"


@pytest.mark.skipif(ON_GPU, reason="the error is for CPU tensors without the interpreter")
def test_clear_error_without_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q = torch.rand(1, 5, 2, 4)
    with pytest.raises(ValueError, match="the triton backend needs CUDA tensors"):
        chunk_gla(q, q, q)


def _fla_chunk_gla():
    try:
        from fla.ops.gla import chunk_gla as fla_chunk_gla
    except ImportError:
        return None
    return fla_chunk_gla


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("gate,reverse", [("per_key", False), ("per_key", True), ("per_head", False)])
def test_large_on_gpu(dtype, gate, reverse):
    """T = 4096, H = 4, K = V = 128 at the default tiles, against the float64 loop (and fla where it imports)."""
    inputs, cotangents = make_inputs(1, 4096, 4, 128, 128, gate, normalizer=16, seed=7)
    on_gpu = {name: t.cuda() for name, t in inputs.items()}
    result = run(chunk_gla, on_gpu, tuple(c.cuda() for c in cotangents), dtype, reverse=reverse)
    expected = reference(
        {n: t.cuda() for n, t in inputs.items()}, tuple(c.cuda() for c in cotangents), dtype, reverse=reverse
    )
    assert_close_to(result, expected, TOLERANCE[dtype])
    fla_chunk_gla = _fla_chunk_gla()
    if fla_chunk_gla is None or reverse or gate != "per_key":
        return
    fla = run(fla_chunk_gla, on_gpu, tuple(c.cuda() for c in cotangents), dtype)
    assert_close_to(fla, expected, max(TOLERANCE[dtype], 5e-3))


@pytest.mark.gpu
def test_clamped_fla_gates_on_gpu():
    """fla's benchmark recipe: bf16, per-key gates logsigmoid(randn) clamped at -5."""
    inputs, cotangents = make_inputs(2, 4096, 4, 128, 128, "per_key", seed=8)
    inputs["g"] = F.logsigmoid(torch.randn(inputs["g"].shape, dtype=torch.float64)).clamp_min(-5)
    on_gpu = {name: t.cuda() for name, t in inputs.items()}
    result = run(chunk_gla, on_gpu, tuple(c.cuda() for c in cotangents), torch.bfloat16)
    expected = reference({n: t.cuda() for n, t in inputs.items()}, tuple(c.cuda() for c in cotangents), torch.bfloat16)
    assert_close_to(result, expected, TOLERANCE[torch.bfloat16])


class _GLABlock(torch.nn.Module):
    """A small GLA layer, H = 2 heads of K = V = 4: q, k, v and the log gate from one projection, or a learnt
    fixed decay per head."""

    def __init__(self, gate: str, reverse: bool):
        super().__init__()
        self.gate, self.reverse = gate, reverse
        self.gate_width = {"per_key": 4, "per_head": 1}.get(gate, 0)
        self.proj = torch.nn.Linear(6, 2 * (12 + self.gate_width))
        self.decay = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 2))

    def forward(self, x, h0):
        q, k, v, gate = self.proj(x).unflatten(-1, (2, -1)).split([4, 4, 4, self.gate_width], -1)
        g = {
            "per_key": lambda: F.logsigmoid(gate),
            "per_head": lambda: F.logsigmoid(gate[..., 0]),
            "fixed": lambda: -F.softplus(self.decay),
            "none": lambda: None,
        }[self.gate]()
        o, final = chunk_gla(q, k, v, g, initial_state=h0, output_final_state=True, reverse=self.reverse)
        return (o**2).sum() + final.sum()


@pytest.mark.parametrize(
    "backend,gate,reverse",
    [("torch", "per_key", False), ("torch", "per_head", True), ("triton", "per_key", True), ("triton", "fixed", False),
     ("triton", "none", False)],
)  # fmt: skip
def test_torch_compile_traces_without_graph_breaks(monkeypatch, device, backend, gate, reverse, compiled_matches_eager):
    """The chunked face (torch ops) and the Triton face (``lrnn::chunk_gla_*``; under the interpreter on a CPU,
    aot_eager runs the custom ops eagerly, so only their fakes are traced) against eager, without cu_seqlens (its
    checks read ``cu_seqlens`` on the host, which breaks the graph)."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    torch.manual_seed(0)
    model = _GLABlock(gate, reverse).to(dev)
    x = torch.randn(2, 9, 6, device=dev)
    h0 = torch.randn(2, 2, 4, 4, device=dev, requires_grad=True)
    leaves = [p for p in model.parameters() if gate == "fixed" or p is not model.decay] + [h0]
    compiled_matches_eager(model, (x, h0), leaves)


@pytest.mark.parametrize("full", [False, True])
def test_custom_ops_pass_opcheck(device, full):
    """Schema, fake tensors, autograd registration and AOT dispatch of the Triton face's two ops, with a per-key
    gate, initial states, final-state cotangents and two sequences through ``cu_seqlens``, and with none of them."""
    from lrnn.core.scan.gla.op import chunk_gla_bwd, chunk_gla_fwd

    inputs, (do, dht) = make_inputs(1, 5, 1, 4, 4, "per_key" if full else "none", seed=5, sequences=2)
    q, k, v, g, h0 = (None if t is None else t.float().to(device) for t in inputs.values())
    h0, dht = (h0, dht.float().to(device)) if full else (None, None)
    leaves = [None if t is None else t.clone().requires_grad_() for t in (q, k, v, g, h0)]
    cu_seqlens = torch.tensor([0, 2, 5], device=device) if full else None
    torch.library.opcheck(chunk_gla_fwd.op, (*leaves[:4], 0.5, leaves[4], full, cu_seqlens))
    torch.library.opcheck(chunk_gla_fwd.op, (q, k, v, g, 0.5, h0, full, cu_seqlens))
    torch.library.opcheck(chunk_gla_bwd.op, (q, k, v, g, 0.5, h0, do.float().to(device), dht, full, cu_seqlens))
