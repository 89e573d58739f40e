"""layer_norm and rms_norm: the Triton face against F.layer_norm and F.rms_norm in float64 with gradients, the
drop-in module, autocast's dtype, compile and opcheck, errors."""

import pytest
import torch
import torch.nn.functional as F
from lrnn.kernels.layer_norm import LayerNorm, layer_norm, rms_norm
from lrnn.kernels.layer_norm import norm as norm_module
from lrnn.kernels.layer_norm import triton as triton_face
from lrnn.kernels.layer_norm.op import layer_norm_bwd, layer_norm_fwd

ON_GPU = torch.cuda.is_available()
TOLERANCE = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


@pytest.fixture
def small_tiles(monkeypatch):
    """Under the interpreter: 4 rows a program and at most 3 backward programs, so rows end in a partial tile and
    each backward program walks several tiles."""
    if not ON_GPU:
        tiles = lambda channels: {"BM": 4, "BC": triton_face.triton.next_power_of_2(channels), "num_warps": 1}  # noqa: E731
        monkeypatch.setattr(triton_face, "launch_config", tiles)
        monkeypatch.setattr(triton_face, "MAX_PROGRAMS", 3)


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got.double().cpu() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def check_against_float64(device, shape, dtype, affine, seed, rms=False):
    """``y`` and the gradients of ``x``, ``weight``, ``bias`` for a random ``dy``, against ``F.layer_norm`` (with
    ``rms``: ``rms_norm`` against ``F.rms_norm``, weight only) in float64 on the same (rounded) inputs."""
    gen = torch.Generator().manual_seed(seed)
    channels = shape[-1]
    x = (torch.randn(shape, generator=gen) * 3 + torch.randn(channels, generator=gen)).to(dtype)
    weight = 1 + torch.randn(channels, generator=gen) if affine else None
    bias = torch.randn(channels, generator=gen) if affine and not rms else None
    grad_y = torch.randn(shape, generator=gen).to(dtype)

    inputs = [t for t in (x, weight, bias) if t is not None]

    def norm(leaves, double):
        x, params = leaves[0], leaves[1:] + [None] * (3 - len(leaves))
        if rms:
            return F.rms_norm(x, (channels,), params[0], 1e-5) if double else rms_norm(x, params[0], 1e-5)
        return F.layer_norm(x, (channels,), *params[:2], 1e-5) if double else layer_norm(x, *params[:2], 1e-5)

    leaves = [t.to(device).requires_grad_() for t in inputs]
    y = norm(leaves, double=False)
    grads = torch.autograd.grad(y, leaves, grad_y.to(device))

    ref_leaves = [t.double().requires_grad_() for t in inputs]
    ref = norm(ref_leaves, double=True)
    ref_grads = torch.autograd.grad(ref, ref_leaves, grad_y.double())

    assert y.dtype == dtype and y.shape == x.shape
    errors = {"y": relative_error(y, ref)}
    names = ("dx", "dw", "db")[: len(grads)]
    errors.update({name: relative_error(g, r) for name, g, r in zip(names, grads, ref_grads, strict=True)})
    assert all(g.dtype == t.dtype for g, t in zip(grads, inputs, strict=True))
    assert max(errors.values()) < TOLERANCE[dtype], errors


@pytest.mark.parametrize(
    "shape,dtype,affine",
    [
        ((3, 7, 96), torch.float32, True),
        ((2, 5, 3, 100), torch.float32, True),
        ((13, 48), torch.float32, False),
        ((4, 9, 96), torch.bfloat16, True),
        ((11, 192), torch.float16, True),
        ((6, 3), torch.float32, True),
    ],
)
@pytest.mark.parametrize("rms", [False, True])
def test_triton_face_matches_float64(monkeypatch, small_tiles, device, shape, dtype, affine, rms):
    """Channel counts that are and are not powers of two, several leading dimensions, partial row tiles, with and
    without the affine parameters, LayerNorm and RMSNorm."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    check_against_float64(device, shape, dtype, affine, seed=sum(shape), rms=rms)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_rms_norm_returns_the_asked_dtype_from_float32_statistics(monkeypatch, small_tiles, device, backend):
    """``out_dtype`` (Vim's RMSNorm asks for its weight's): both faces equal ``F.rms_norm`` in float32 rounded once
    to it; the default is ``x``'s dtype."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    torch.manual_seed(4)
    x = torch.randn(3, 9, 40, device=device) * 5
    weight = torch.randn(40, device=device).to(torch.bfloat16)
    got = rms_norm(x, weight, 1e-5, out_dtype=torch.bfloat16)
    want = F.rms_norm(x, (40,), weight.float(), 1e-5).to(torch.bfloat16)
    assert got.dtype == torch.bfloat16 and rms_norm(x).dtype == torch.float32
    within_one_rounding = dict(rtol=0, atol=0) if backend == "torch" else dict(rtol=8e-3, atol=1e-5)
    torch.testing.assert_close(got, want, **within_one_rounding)


def test_module_is_a_drop_in_for_nn_layer_norm(monkeypatch, small_tiles, device):
    """Same state dict as ``nn.LayerNorm``, the same numbers on the same weights, and ``nn.LayerNorm``'s path for a
    normalised shape of several dimensions."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    torch.manual_seed(0)
    plain = torch.nn.LayerNorm(40, eps=1e-6)
    torch.nn.init.normal_(plain.weight)
    torch.nn.init.normal_(plain.bias)
    ours = LayerNorm(40, eps=1e-6)
    ours.load_state_dict(plain.state_dict())
    assert list(ours.state_dict()) == list(plain.state_dict())
    x = torch.randn(3, 17, 40)
    torch.testing.assert_close(ours.to(device)(x.to(device)).cpu(), plain(x), rtol=1e-5, atol=1e-5)
    two_dims = LayerNorm((17, 40))
    torch.testing.assert_close(two_dims(x), F.layer_norm(x, (17, 40)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_autocast_gives_f_layer_norms_dtype(monkeypatch, small_tiles, device, dtype):
    """Under autocast the output dtype is ``F.layer_norm``'s on that device (float32 on CUDA, whose autocast runs
    LayerNorm in float32; the input's on the CPU)."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    x = torch.randn(5, 24, device=device).to(dtype)
    weight = torch.ones(24, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        got = layer_norm(x, weight, None)
        want = F.layer_norm(x, (24,), weight, None)
    assert got.dtype == want.dtype
    assert got.dtype == (torch.float32 if ON_GPU else dtype)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_to_autocast_dtype_is_f_layer_norm_rounded_once(monkeypatch, small_tiles, device, backend):
    """With ``to_autocast_dtype`` both faces return the autocast dtype under autocast, equal to ``F.layer_norm``'s
    float32 result cast to it (what the next linear layer would have done), and the usual dtype outside autocast."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    torch.manual_seed(3)
    norm = LayerNorm(24, to_autocast_dtype=True).to(device)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(7, 24, device=device) * 4
    with torch.autocast(device.type, dtype=torch.bfloat16):
        got = norm(x)
    want = F.layer_norm(x, (24,), norm.weight, norm.bias).to(torch.bfloat16)
    assert got.dtype == torch.bfloat16
    within_one_rounding = dict(rtol=0, atol=0) if backend == "torch" else dict(rtol=8e-3, atol=1e-5)
    torch.testing.assert_close(got, want, **within_one_rounding)
    assert norm(x).dtype == torch.float32


class _NormBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(6, 20)
        self.norm = LayerNorm(20, to_autocast_dtype=True)

    def forward(self, x):
        return self.norm(self.proj(x)).square().sum()


def test_torch_compile_traces_without_graph_breaks(monkeypatch, small_tiles, device, compiled_matches_eager):
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    torch.manual_seed(0)
    model = _NormBlock().to(device)
    compiled_matches_eager(model, (torch.randn(9, 6, device=device),), list(model.parameters()))


@pytest.mark.parametrize("affine,rms", [(True, False), (False, False), (True, True)])
def test_custom_ops_pass_opcheck(small_tiles, device, affine, rms):
    """Schema, fake tensors, autograd registration and AOT dispatch of the Triton face's two ops."""
    x = torch.randn(10, 12, device=device, requires_grad=True)
    weight = torch.randn(12, device=device, requires_grad=True) if affine else None
    bias = torch.randn(12, device=device, requires_grad=True) if affine and not rms else None
    torch.library.opcheck(layer_norm_fwd.op, (x, weight, bias, 1e-5, torch.float32, rms))
    _, mean, rstd = layer_norm_fwd(x.detach(), weight, bias, 1e-5, torch.float32, rms)
    params = [None if t is None else t.detach() for t in (weight, bias)]
    grad_y = torch.randn(10, 12, device=device)
    torch.library.opcheck(layer_norm_bwd.op, (x.detach(), *params, mean, rstd, grad_y, rms))


def test_other_devices_and_float64_take_f_layer_norm(monkeypatch):
    monkeypatch.delenv("LRNN_KERNEL_BACKEND", raising=False)
    x = torch.randn(4, 10, dtype=torch.float64)
    assert torch.equal(layer_norm(x, eps=1e-3), F.layer_norm(x, (10,), eps=1e-3))
    assert torch.equal(rms_norm(x, eps=1e-3), F.rms_norm(x, (10,), eps=1e-3))
    assert layer_norm(torch.randn(0, 10)).shape == (0, 10)


X = torch.randn(6, 3)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: layer_norm(X.numpy()), TypeError, "x must be a torch.Tensor, got ndarray"),
        (lambda: layer_norm(X.int()), TypeError, "x must be a real floating tensor.*torch.int32"),
        (lambda: layer_norm(torch.tensor(1.0)), ValueError, "at least one dimension"),
        (lambda: layer_norm(X, torch.ones(4)), ValueError, r"weight must be \[C\] with C = 3.*\(4,\)"),
        (lambda: layer_norm(X, None, [0.0] * 3), TypeError, "bias must be a torch.Tensor or None, got list"),
        (lambda: layer_norm(X, torch.ones(3, device="meta")), ValueError, "weight is on meta but x is on cpu"),
        (lambda: rms_norm(X, torch.ones(4)), ValueError, r"weight must be \[C\] with C = 3.*\(4,\)"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels", [96, 192, 384, 768])
@pytest.mark.parametrize("rms", [False, True])
def test_triton_on_cuda_at_size(monkeypatch, dtype, channels, rms):
    """The compiled kernels at the default tiles and VMamba-T's (and Vim's) channel counts, 70k rows: over a
    thousand backward programs, each walking several tiles."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    check_against_float64("cuda", (8, 8811, channels), dtype, True, seed=channels, rms=rms)


def test_kernels_compile_for_the_h100(compiles_for_the_h100):
    """Both kernels compile for sm_90 at the launch configurations of every channel count the models use."""
    compiles_for_the_h100("layer_norm_kernels", (1, 48, 96, 100, 384, 768, 1536), ("bf16", "fp16", "fp32"))


@pytest.mark.parametrize("grad", [False, True])
def test_cuda_default_is_the_triton_forward_without_gradients(monkeypatch, grad):
    """Inference takes the Triton forward on CUDA; training keeps ``F.layer_norm`` until the Triton backward beats
    it (``benchmarks/NOTES.md``)."""
    asked = []
    monkeypatch.setattr(
        norm_module, "kernel_backend", lambda device, cuda_default: asked.append(cuda_default) or "torch"
    )
    weight = torch.ones(8, requires_grad=True)
    with torch.set_grad_enabled(grad):
        layer_norm(torch.randn(3, 8), weight)
        rms_norm(torch.randn(3, 8), weight)
    assert asked == ["torch" if grad else "triton"] * 2
