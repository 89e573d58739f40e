"""linear_scan: every face against the sequential float64 reference, gradients and states included."""

import itertools

import pytest
import torch
import triton
import triton.language as tl
from lrnn.core.scan import linear_scan, linear_scan_step
from lrnn.core.scan.backend import accumulation_dtype
from lrnn.core.scan.linear import chunked, copy_engine, linear_scan_reference, lookback
from lrnn.core.scan.linear import triton as triton_face
from scan_testing import gates, randn, relative_error, scalar_loss

ON_GPU = torch.cuda.is_available()
TOLERANCE = {torch.float32: 2e-5, torch.complex64: 2e-5, torch.float64: 1e-12, torch.bfloat16: 2e-2,
             torch.float16: 3e-3}  # fmt: skip


def check_against_reference(backend, device, monkeypatch, *, dtype, shape, strength, reverse, with_h0, seed):
    """Forward, final state and the gradients of a, x and the initial state, against the float64 loop."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    gen = torch.Generator().manual_seed(seed)
    a = gates(shape, strength, dtype, gen)
    x = randn(shape, dtype, gen)
    h0 = randn(shape[:1] + shape[2:], accumulation_dtype(dtype), gen) if with_h0 else None
    grad_h, grad_final = randn(shape, dtype, gen), randn(shape[:1] + shape[2:], dtype, gen)

    leaves = [t.to(device).requires_grad_() for t in (a, x)] + ([h0.to(device).requires_grad_()] if with_h0 else [])
    h, final = linear_scan(*leaves[:2], leaves[2] if with_h0 else None, output_final_state=True, reverse=reverse)
    grads = torch.autograd.grad(scalar_loss(h, final, grad_h.to(device), grad_final.to(device)), leaves)

    high = torch.complex128 if dtype.is_complex else torch.float64
    ref_leaves = [t.to(high).requires_grad_() for t in (a, x)] + ([h0.to(high).requires_grad_()] if with_h0 else [])
    h_ref, final_ref = linear_scan_reference(
        *ref_leaves[:2], ref_leaves[2] if with_h0 else None, output_final_state=True, reverse=reverse
    )
    ref_grads = torch.autograd.grad(scalar_loss(h_ref, final_ref, grad_h, grad_final), ref_leaves)

    tol = TOLERANCE[dtype]
    assert h.dtype == dtype and h.shape == shape
    assert final.dtype == accumulation_dtype(dtype)
    errors = {"h": relative_error(h, h_ref), "final_state": relative_error(final, final_ref)}
    errors.update(
        {
            f"d{name}": relative_error(g, r)
            for name, g, r in zip(("a", "x", "h0")[: len(grads)], grads, ref_grads, strict=True)
        }
    )
    assert max(errors.values()) < tol, errors


TORCH_CASES = list(
    itertools.product(
        [(2, 1, 5), (2, 63, 37), (3, 257, 3, 5)],
        ["near_one", "near_zero", "uniform"],
        [False, True],
        [False, True],
        [torch.float32, torch.complex64],
    )
)


@pytest.mark.parametrize("chunk", [4, 64])
@pytest.mark.parametrize("shape,strength,reverse,with_h0,dtype", TORCH_CASES)
def test_torch_face(monkeypatch, chunk, shape, strength, reverse, with_h0, dtype):
    monkeypatch.setattr(chunked, "CHUNK", chunk)
    case = dict(dtype=dtype, shape=torch.Size(shape), strength=strength, reverse=reverse, with_h0=with_h0)
    check_against_reference("torch", torch.device("cpu"), monkeypatch, **case, seed=sum(shape) + chunk)


# Under the CPU interpreter small tiles give several time tiles and a partial channel block at small sizes,
# and the longest sequences are tried with fewer gate settings; on a GPU every case runs at the default tiles.
TRITON_CASES = [case for case in TORCH_CASES if ON_GPU or case[0][1] < 257 or (case[1] == "uniform" and case[3])]
TRITON_CASES.append(((1, 37, 9), "uniform", True, True, torch.float64))


@pytest.mark.parametrize("shape,strength,reverse,with_h0,dtype", TRITON_CASES)
def test_triton_face(monkeypatch, device, shape, strength, reverse, with_h0, dtype):
    if not ON_GPU:
        monkeypatch.setattr(triton_face, "launch_config", lambda *args: {"BT": 16, "BD": 8, "num_warps": 1})
    case = dict(dtype=dtype, shape=torch.Size(shape), strength=strength, reverse=reverse, with_h0=with_h0)
    check_against_reference("triton", device, monkeypatch, **case, seed=sum(shape))


# The look-back kernels (one program a tile, real inputs): on the CPU small tiles and the uniform gates only.
LOOKBACK_CASES = [case for case in TRITON_CASES if not case[4].is_complex and (ON_GPU or case[1] == "uniform")]


@pytest.mark.parametrize("shape,strength,reverse,with_h0,dtype", LOOKBACK_CASES)
def test_lookback_face(monkeypatch, device, shape, strength, reverse, with_h0, dtype):
    tile = lookback.LOOKBACK_CONFIG if ON_GPU else {"BT": 16, "BD": 8, "num_warps": 1, "lookback": True}
    monkeypatch.setattr(triton_face, "launch_config", lambda *args: tile)
    case = dict(dtype=dtype, shape=torch.Size(shape), strength=strength, reverse=reverse, with_h0=with_h0)
    check_against_reference("triton", device, monkeypatch, **case, seed=sum(shape) + 1)


# The copy-engine kernels (``copy_engine.py``), both ways: time in order, rows of a multiple of 16 bytes; D = 40
# leaves a partial channel block (of 16 under the interpreter, 32 on a GPU) and T = 70 a partial tile, both filled
# and clipped by the engine.
COPY_ENGINE_CASES = list(
    itertools.product(
        [(2, 1, 8), (2, 70, 40), (3, 130, 16)],
        ["near_one", "uniform"],
        [False, True],
        [torch.float32, torch.bfloat16, torch.float16] if ON_GPU else [torch.float32],
    )
)


@pytest.mark.parametrize("shape,strength,with_h0,dtype", COPY_ENGINE_CASES)
def test_copy_engine_face(monkeypatch, device, shape, strength, with_h0, dtype):
    tile = {"BT": 64, "BD": 32, "num_warps": 1, "num_stages": 3} if ON_GPU else {"BT": 16, "BD": 16, "num_warps": 1}
    monkeypatch.setattr(triton_face, "launch_config", lambda *args: {"num_stages": 2, **tile, "tma": True})
    case = dict(dtype=dtype, shape=torch.Size(shape), strength=strength, reverse=False, with_h0=with_h0)
    check_against_reference("triton", device, monkeypatch, **case, seed=sum(shape) + 2)


@pytest.mark.parametrize(
    "make,reverse,match",
    [
        (lambda device: torch.full((1, 4, 8), 0.5, device=device), True, "in order"),
        (lambda device: torch.full((1, 4, 6), 0.5, device=device), False, "multiples of 16 bytes"),
        (lambda device: torch.full((33,), 0.5, device=device)[1:].view(1, 4, 8), False, "addresses of a, x"),
        (lambda device: torch.full((1, 4, 8), 0.5 + 0.5j, device=device), False, "real inputs"),
    ],
)
def test_copy_engine_refuses_what_it_cannot_load(device, make, reverse, match):
    config = {"BT": 16, "BD": 8, "num_warps": 1, "num_stages": 2, "tma": True}
    a = make(device)
    with pytest.raises(ValueError, match=match):
        triton_face.linear_scan_triton_fwd(a, a, None, reverse, config)


@pytest.mark.parametrize(
    "batch,width,dtype,expected",
    [
        (8, 4096, torch.bfloat16, {"tma": True, "num_stages": 2}),
        (8, 1536, torch.bfloat16, {"tma": True, "num_stages": 4}),
        (8, 4096, torch.float16, {"tma": True, "num_stages": 2}),
        (8, 1536, torch.float16, {"tma": True, "num_stages": 4}),
        (1, 12256, torch.bfloat16, {"lookback": True}),
        (8, 4096, torch.float32, {"num_warps": 4}),
    ],
)
def test_copy_engine_takes_the_wide_16_bit_forward(batch, width, dtype, expected):
    """The copy engine from 384 programs of 32 channels, two stages deep from 1024, for bfloat16 and float16; the
    backward (opt-in there), float32 and inputs it cannot take keep their kernels."""
    assert expected.items() <= triton_face.launch_config(batch, width, dtype, "fwd", True).items()
    for others in (triton_face.launch_config(batch, width, dtype, "bwd", True),
                   triton_face.launch_config(batch, width, dtype, "fwd", False)):  # fmt: skip
        assert "tma" not in others


@pytest.mark.parametrize("reverse", [False, True])
def test_copy_engine_is_not_taken_where_it_cannot_run(reverse):
    """On the CPU (no copy engine) and for reversed scans the default forward keeps the per-sequence kernels."""
    a = torch.full((1, 4, 64), 0.5, dtype=torch.bfloat16)
    assert not copy_engine.copy_engine_takes(reverse, a, a)
    if ON_GPU:
        assert copy_engine.copy_engine_takes(reverse, a.cuda(), a.cuda()) is (not reverse)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(8, 300, 4096), (4, 1000, 3088)])
def test_default_bf16_forward_through_the_copy_engine(monkeypatch, shape):
    """The default launch of a wide bf16 forward goes through the copy engine (two and four stages; D = 3088 leaves
    a partial channel block) and matches the float64 loop."""
    calls = []
    forward = copy_engine.linear_scan_copy_engine_fwd
    monkeypatch.setattr(copy_engine, "linear_scan_copy_engine_fwd", lambda *a: calls.append(a) or forward(*a))
    case = dict(dtype=torch.bfloat16, shape=torch.Size(shape), strength="near_one", reverse=False, with_h0=True)
    check_against_reference("triton", torch.device("cuda"), monkeypatch, **case, seed=13)
    assert len(calls) == 1


def test_lookback_refuses_complex_inputs(device):
    a = torch.full((1, 4, 2), 0.5 + 0.5j, dtype=torch.complex64, device=device)
    with pytest.raises(ValueError, match="real inputs"):
        triton_face.linear_scan_triton_fwd(a, a, None, False, {**lookback.LOOKBACK_CONFIG, "BT": 16, "BD": 8})


@triton.jit(do_not_specialize=["i"])
def _state_entering_kernel(flags, aggregates, inclusives, start_ptr, out_ptr, i, column, n_columns, BD: tl.constexpr):
    offs = tl.arange(0, BD)
    start = tl.load(start_ptr + offs)
    tl.store(out_ptr + offs, lookback._state_entering(flags, aggregates, inclusives, i, column, n_columns, start, BD))


@pytest.mark.parametrize("inclusive_at", [0, 4, 10])
def test_lookback_folds_published_tiles(device, inclusive_at):
    """The look-back over published tiles, as the GPU sees it when several predecessors are still running (the
    interpreter runs programs one after another, so its scans only ever find an inclusive predecessor): tile 11 of
    column 1 (of 3) folds the aggregates of tiles 10 down to the nearest inclusive one and takes its state."""
    gen = torch.Generator().manual_seed(inclusive_at)
    tiles, n_columns, column, width = 11, 3, 1, 4
    flags = torch.randint(1, 3, (tiles * n_columns,), dtype=torch.int32, generator=gen)
    flags.view(tiles, n_columns)[inclusive_at:, column] = 1
    flags.view(tiles, n_columns)[inclusive_at, column] = 2
    aggregates = torch.rand(tiles * n_columns, 2, width, dtype=torch.float64, generator=gen) + 0.2
    inclusives = torch.randn(tiles * n_columns, width, dtype=torch.float64, generator=gen)
    start, out = torch.randn(width, dtype=torch.float64, generator=gen), torch.empty(width, dtype=torch.float64)
    want = inclusives[inclusive_at * n_columns + column]
    for k in range(inclusive_at + 1, tiles):
        decay, value = aggregates[k * n_columns + column]
        want = decay * want + value
    buffers = [t.to(device) for t in (flags, aggregates, inclusives, start, out)]
    _state_entering_kernel[(1,)](*buffers, tiles, column, n_columns, BD=width)
    torch.testing.assert_close(buffers[-1].cpu(), want, rtol=1e-12, atol=1e-12)
    _state_entering_kernel[(1,)](*buffers, 0, column, n_columns, BD=width)
    torch.testing.assert_close(buffers[-1].cpu(), start, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("tile", [(32, 64), (16, 128), (64, 32), (8, 256)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("reverse", [False, True])
def test_lookback_face_large(monkeypatch, tile, dtype, reverse):
    """Thousands of tile programs in flight at once: the look-back's ordering on real hardware."""
    config = {**lookback.LOOKBACK_CONFIG, "BT": tile[0], "BD": tile[1]}
    monkeypatch.setattr(triton_face, "launch_config", lambda *args: config)
    case = dict(dtype=dtype, shape=torch.Size((3, 16411, 300)), strength="near_one", reverse=reverse, with_h0=True)
    check_against_reference("triton", torch.device("cuda"), monkeypatch, **case, seed=12)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_low_precision_inputs(monkeypatch, device, backend, dtype):
    if backend == "triton" and not ON_GPU:
        monkeypatch.setattr(triton_face, "launch_config", lambda *args: {"BT": 16, "BD": 8, "num_warps": 1})
    dev = device if backend == "triton" else torch.device("cpu")
    case = dict(dtype=dtype, shape=torch.Size((2, 45, 11)), strength="uniform", reverse=False, with_h0=True)
    check_against_reference(backend, dev, monkeypatch, **case, seed=7)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.complex64])
@pytest.mark.parametrize("reverse", [False, True])
def test_triton_face_large(monkeypatch, dtype, reverse):
    case = dict(dtype=dtype, shape=torch.Size((3, 4099, 300)), strength="near_one", reverse=reverse, with_h0=True)
    check_against_reference("triton", torch.device("cuda"), monkeypatch, **case, seed=11)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_torch_face(monkeypatch, dtype, reverse):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    monkeypatch.setattr(chunked, "CHUNK", 4)
    gen = torch.Generator().manual_seed(3)
    a = gates((2, 11, 3), "uniform", dtype, gen).requires_grad_()
    x = randn((2, 11, 3), dtype, gen).requires_grad_()
    h0 = randn((2, 3), dtype, gen).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, x, h0: linear_scan(a, x, h0, output_final_state=True, reverse=reverse), (a, x, h0)
    )


def test_default_dispatch_on_cpu_is_torch_face(monkeypatch):
    monkeypatch.delenv("LRNN_SCAN_BACKEND", raising=False)
    calls = []
    monkeypatch.setattr(chunked, "_scan_from_zero", lambda a, x: calls.append(1) or torch.zeros_like(x))
    linear_scan(torch.rand(1, 4, 2), torch.rand(1, 4, 2))
    assert calls


def test_reference_backend_is_forced_by_env(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "reference")
    a, x = torch.rand(2, 9, 4, dtype=torch.float64), torch.randn(2, 9, 4, dtype=torch.float64)
    h, final = linear_scan(a, x, output_final_state=True)
    assert torch.equal(h, linear_scan_reference(a, x)[0]) and torch.equal(final, h[:, -1])
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "cuda-please")
    with pytest.raises(ValueError, match="LRNN_SCAN_BACKEND"):
        linear_scan(a, x)


def test_non_contiguous_inputs(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    a = torch.rand(6, 20, 2).transpose(0, 2)
    x = torch.randn(2, 20, 6)[:, :, ::1].transpose(1, 1)
    assert not a.is_contiguous()
    h, _ = linear_scan(a, x)
    torch.testing.assert_close(h, linear_scan_reference(a, x)[0], rtol=1e-5, atol=1e-6)


def test_final_state_is_none_unless_asked(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    _, final = linear_scan(torch.rand(1, 3, 2), torch.rand(1, 3, 2))
    assert final is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_step_form_matches_parallel_form(monkeypatch, dtype):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    gen = torch.Generator().manual_seed(5)
    a, x = gates((2, 30, 4), "uniform", dtype, gen), randn((2, 30, 4), dtype, gen)
    h0 = randn((2, 4), dtype, gen)
    h_parallel, _ = linear_scan(a, x, h0)
    state, steps = h0, []
    for t in range(30):
        state = linear_scan_step(a[:, t], x[:, t], state)
        steps.append(state)
    torch.testing.assert_close(torch.stack(steps, 1), h_parallel, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(linear_scan_step(a[:, 0], x[:, 0]), x[:, 0])


def test_torch_compile_traces_without_graph_breaks(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")

    class GatedScan(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 16)

        def forward(self, u):
            a, x = self.proj(u).chunk(2, dim=-1)
            h, final = linear_scan(torch.sigmoid(a), x, output_final_state=True)
            return h.sum() + final.sum()

    torch._dynamo.reset()
    model = GatedScan()
    u = torch.randn(2, 33, 8)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss = compiled(u)
    loss.backward()
    grad_compiled = model.proj.weight.grad.clone()
    model.zero_grad()
    eager = model(u)
    eager.backward()
    torch.testing.assert_close(loss, eager)
    torch.testing.assert_close(grad_compiled, model.proj.weight.grad)


@pytest.mark.parametrize(
    "make_inputs,error,message",
    [
        (lambda: (torch.rand(2, 5, 3), torch.rand(2, 5, 4), None), ValueError, r"same shape.*\(2, 5, 3\).*\(2, 5, 4\)"),
        (lambda: (torch.rand(2, 5, 3), torch.rand(2, 5, 3, dtype=torch.float64), None), TypeError, "same dtype"),
        (
            lambda: (torch.ones(2, 5, 3, dtype=torch.int64), torch.ones(2, 5, 3, dtype=torch.int64), None),
            TypeError,
            "floating point or complex",
        ),
        (lambda: (torch.rand(2, 0, 3), torch.rand(2, 0, 3), None), ValueError, "T = 0"),
        (lambda: (torch.rand(5), torch.rand(5), None), ValueError, r"\[B, T, \.\.\.\]"),
        (
            lambda: (torch.rand(2, 5, 3), torch.rand(2, 5, 3), torch.rand(2, 4)),
            ValueError,
            r"initial_state must have shape \(2, 3\)",
        ),
        (lambda: (torch.rand(2, 5, 3), torch.rand(2, 5, 3, device="meta"), None), ValueError, "same device"),
        (lambda: ([1.0], torch.rand(2, 5, 3), None), TypeError, "a must be a torch.Tensor"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(make_inputs, error, message):
    a, x, h0 = make_inputs()
    with pytest.raises(error, match=message):
        linear_scan(a, x, initial_state=h0)


def test_triton_backend_on_cpu_without_interpreter_says_how(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CUDA tensors"):
        linear_scan(torch.rand(1, 3, 2), torch.rand(1, 3, 2))
