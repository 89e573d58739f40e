"""causal_conv1d: both faces against a float64 loop, gradients and states included, the anti-causal mode,
streaming, errors."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from lrnn.kernels.causal_conv1d import causal_conv1d, causal_conv1d_reference, causal_conv1d_step
from lrnn.kernels.causal_conv1d import conv as conv_module
from lrnn.kernels.causal_conv1d import triton as triton_face

ON_GPU = torch.cuda.is_available()
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}


def loop_oracle(x, weight, bias, activation, initial_state):
    """``y_t = act(bias + sum_k w_k x_{t-W+1+k})`` written out step by step in float64, and the last ``W-1`` inputs."""
    width = weight.shape[1]
    history = [initial_state[..., j].double() for j in range(width - 1)] if initial_state is not None else []
    history = [torch.zeros_like(x[:, 0]).double()] * (width - 1 - len(history)) + history
    ys = []
    for t in range(x.shape[1]):
        history.append(x[:, t].double())
        s = sum(weight[:, k].double() * history[-width + k] for k in range(width))
        s = s + (bias.double() if bias is not None else 0)
        ys.append(F.silu(s) if activation == "silu" else s)
    if width == 1:
        return torch.stack(ys, 1), x.new_zeros(x.shape[0], x.shape[2], 0)
    return torch.stack(ys, 1), torch.stack(history[len(history) - width + 1 :], -1)


def flipped_oracle(x, weight, bias, activation):
    """The anti-causal conv by its definition: the loop over the time-reversed sequence, reversed back."""
    return loop_oracle(x.flip(1), weight, bias, activation, None)[0].flip(1)


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


def make_inputs(shape, width, with_bias, with_h0, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    batch, _, channels = shape
    x = torch.randn(shape, generator=gen).to(dtype)
    param_dtype = torch.float64 if dtype == torch.float64 else torch.float32  # bfloat16 inputs: float32 weights
    weight = (torch.randn(channels, width, generator=gen) / width**0.5).to(param_dtype)
    bias = torch.randn(channels, generator=gen).to(param_dtype) if with_bias else None
    h0 = torch.randn(batch, channels, width - 1, generator=gen).to(dtype) if with_h0 else None
    return x, weight, bias, h0


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiny tiles under the interpreter: several time tiles, several backward stretches, partial channel blocks."""
    if not ON_GPU:
        monkeypatch.setattr(triton_face, "launch_config", lambda direction: {"BT": 4, "BD": 4, "NT": 2, "num_warps": 1})


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_reference_is_the_loop(width, activation):
    x, weight, bias, h0 = make_inputs((2, 9, 5), width, True, True, torch.float64, seed=width)
    y, final = causal_conv1d_reference(x, weight.double(), bias.double(), activation, h0, output_final_state=True)
    y_loop, final_loop = loop_oracle(x, weight, bias, activation, h0)
    torch.testing.assert_close(y, y_loop, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(final, final_loop, rtol=0, atol=0)


CASES = list(itertools.product([2, 3, 4], [False, True], [None, "silu"], [False, True]))


def check_face(backend, device, monkeypatch, *, shape, width, with_bias, activation, with_h0, dtype, seed):
    """Output, final state and every gradient (through both outputs) against the float64 reference, computed on
    the same device."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    x, weight, bias, h0 = make_inputs(shape, width, with_bias, with_h0, dtype, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    grad_y = torch.randn(shape, generator=gen)
    grad_final = torch.randn(shape[0], shape[2], width - 1, generator=gen)
    inputs = {"x": x, "weight": weight, "bias": bias, "initial_state": h0}
    names = [name for name, t in inputs.items() if t is not None]

    leaves = {name: inputs[name].to(device).requires_grad_() for name in names}
    kw = {name: leaves.get(name) for name in inputs}
    y, final = causal_conv1d(**kw, activation=activation, output_final_state=True)
    loss = (y.float() * grad_y.to(device)).sum() + (final.float() * grad_final.to(device)).sum()
    grads = dict(zip(names, torch.autograd.grad(loss, [leaves[n] for n in names]), strict=True))

    ref_leaves = {name: inputs[name].to(device, torch.float64).requires_grad_() for name in names}
    ref_kw = {name: ref_leaves.get(name) for name in inputs}
    y_ref, final_ref = causal_conv1d_reference(**ref_kw, activation=activation, output_final_state=True)
    ref_loss = (y_ref * grad_y.to(device, torch.float64)).sum() + (
        final_ref * grad_final.to(device, torch.float64)
    ).sum()
    ref_grads = dict(zip(names, torch.autograd.grad(ref_loss, [ref_leaves[n] for n in names]), strict=True))

    assert y.dtype == dtype and y.shape == shape and final.dtype == dtype
    assert final.shape == (shape[0], shape[2], width - 1)
    errors = {"y": relative_error(y, y_ref)}
    if width > 1:
        errors["final_state"] = relative_error(final, final_ref)
    errors.update({f"d{name}": relative_error(grads[name], ref_grads[name]) for name in names})
    for name in names:
        assert grads[name].dtype == inputs[name].dtype and grads[name].shape == inputs[name].shape, name
    assert max(errors.values()) < TOLERANCE[dtype], errors


@pytest.mark.parametrize("width,with_bias,activation,with_h0", CASES)
def test_torch_face(monkeypatch, width, with_bias, activation, with_h0):
    case = dict(width=width, with_bias=with_bias, activation=activation, with_h0=with_h0)
    check_face("torch", "cpu", monkeypatch, shape=(2, 13, 7), dtype=torch.float32, seed=width, **case)


# The interpreter is slow: one sequence (the edge cases have two), every case with a bias and two without.
TRITON_CASES = [case for case in CASES if case[1]] + [(4, False, "silu", True), (2, False, None, False)]


@pytest.mark.parametrize("width,with_bias,activation,with_h0", TRITON_CASES)
def test_triton_face(monkeypatch, small_tiles, width, with_bias, activation, with_h0):
    case = dict(width=width, with_bias=with_bias, activation=activation, with_h0=with_h0)
    device = "cuda" if ON_GPU else "cpu"
    check_face("triton", device, monkeypatch, shape=(1, 11, 6), dtype=torch.float32, seed=width, **case)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize(
    "shape,width,dtype",
    [((1, 1, 5), 4, torch.float32), ((2, 2, 9), 4, torch.float32), ((2, 11, 6), 1, torch.float32),
     ((1, 10, 5), 6, torch.float32), ((2, 13, 7), 4, torch.float64), ((2, 13, 7), 4, torch.bfloat16)],
)  # fmt: skip
def test_edge_shapes_and_dtypes(monkeypatch, small_tiles, backend, shape, width, dtype):
    """T shorter than the state (the final state keeps part of the initial one), W = 1, a wide W, other dtypes."""
    device = "cuda" if ON_GPU and backend == "triton" else "cpu"
    case = dict(width=width, with_bias=True, activation="silu", with_h0=width > 1)
    check_face(backend, device, monkeypatch, shape=shape, dtype=dtype, seed=sum(shape) + width, **case)


def check_reverse_face(backend, device, monkeypatch, *, shape, width, activation, dtype, seed):
    """``reverse=True`` against ``flip, conv, flip`` in float64: the output and the gradients of x, weight, bias."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    inputs = make_inputs(shape, width, True, False, dtype, seed)[:3]
    grad_y = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(device)

    leaves = [t.to(device).requires_grad_() for t in inputs]
    y, final = causal_conv1d(*leaves, activation, reverse=True)
    grads = torch.autograd.grad((y.double() * grad_y).sum(), leaves)

    ref_leaves = [t.double().to(device).requires_grad_() for t in inputs]
    y_ref = flipped_oracle(*ref_leaves, activation)
    ref_grads = torch.autograd.grad((y_ref * grad_y).sum(), ref_leaves)

    assert final is None and y.dtype == dtype and y.shape == shape
    for leaf, grad in zip(inputs, grads, strict=True):
        assert grad.dtype == leaf.dtype and grad.shape == leaf.shape
    pairs = zip(["y", "dx", "dweight", "dbias"], (y, *grads), (y_ref, *ref_grads), strict=True)
    errors = {name: relative_error(got, want) for name, got, want in pairs}
    assert max(errors.values()) < TOLERANCE[dtype], errors


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("steps,width,activation", list(itertools.product([1, 3, 63], [3, 4], [None, "silu"])))
def test_reverse_is_the_flipped_conv(monkeypatch, small_tiles, backend, steps, width, activation):
    """In float64; T shorter than, equal to and many tiles longer than the ``W-1`` steps the conv reads ahead."""
    device = "cuda" if ON_GPU and backend == "triton" else "cpu"
    case = dict(width=width, activation=activation, dtype=torch.float64, seed=steps + width)
    check_reverse_face(backend, device, monkeypatch, shape=(2, steps, 5), **case)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("width", [2, 3, 4])
def test_step_and_pieces_agree_with_the_whole(monkeypatch, small_tiles, backend, width):
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    device = "cuda" if ON_GPU and backend == "triton" else "cpu"
    inputs = make_inputs((2, 11, 5), width, True, True, torch.float32, seed=width)
    x, weight, bias, h0 = (t.to(device) for t in inputs)
    y, final = causal_conv1d(x, weight, bias, "silu", h0, output_final_state=True)

    state, ys = h0, []
    for t in range(x.shape[1]):
        y_t, state = causal_conv1d_step(x[:, t], weight, bias, "silu", state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state, final, rtol=0, atol=0)

    y1, state1 = causal_conv1d(x[:, :1], weight, bias, "silu", h0, output_final_state=True)
    y2, state2 = causal_conv1d(x[:, 1:6], weight, bias, "silu", state1, output_final_state=True)
    y3, state3 = causal_conv1d(x[:, 6:], weight, bias, "silu", state2, output_final_state=True)
    torch.testing.assert_close(torch.cat([y1, y2, y3], 1), y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(state3, final, rtol=0, atol=0)


def test_step_from_zeros_is_the_first_output():
    x, weight, bias, _ = make_inputs((3, 4, 6), 4, True, False, torch.float32, seed=0)
    y, _ = causal_conv1d(x, weight, bias, None)
    y0, state = causal_conv1d_step(x[:, 0], weight, bias, None)
    torch.testing.assert_close(y0, y[:, 0])
    torch.testing.assert_close(state, torch.cat([torch.zeros(3, 6, 2), x[:, 0, :, None]], -1))


def test_non_contiguous_inputs(monkeypatch, small_tiles):
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    device = "cuda" if ON_GPU else "cpu"
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, device=device)
    x = torch.randn(2, 6, 9, device=device).transpose(1, 2)
    h0 = torch.randn(2, 4, 6, device=device).transpose(1, 2)[..., :3]
    y, _ = causal_conv1d(x, conv.weight[:, 0].T.contiguous().T, conv.bias, "silu", h0)
    y_ref, _ = causal_conv1d_reference(x.contiguous(), conv.weight[:, 0], conv.bias, "silu", h0.contiguous())
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("LRNN_KERNEL_BACKEND", raising=False)
    assert conv_module.kernel_backend(torch.device("cuda")) == "torch"
    assert conv_module.kernel_backend(torch.device("cuda"), cuda_default="triton") == "triton"
    assert conv_module.kernel_backend(torch.device("cpu"), cuda_default="triton") == "torch"
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "cuda")
    with pytest.raises(ValueError, match="LRNN_KERNEL_BACKEND.*'cuda'"):
        conv_module.kernel_backend(torch.device("cpu"))
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        conv_module.kernel_backend(torch.device("cpu"))


X = torch.randn(2, 5, 3)
W = torch.randn(3, 4)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: causal_conv1d(X[0], W), ValueError, r"x must be a non-empty \[B, T, D\].*\(5, 3\)"),
        (lambda: causal_conv1d(X[:, :0], W), ValueError, r"non-empty.*\(2, 0, 3\)"),
        (lambda: causal_conv1d(X.long(), W), TypeError, "int64"),
        (lambda: causal_conv1d(X, torch.randn(4, 4)), ValueError, r"D = 3.*\(4, 4\)"),
        (lambda: causal_conv1d(X, torch.randn(3, 1, 4)), ValueError, r"weight must be \[D, W\]"),
        (lambda: causal_conv1d(X, torch.randn(3, 0)), ValueError, "W >= 1"),
        (lambda: causal_conv1d(X, W, torch.randn(4)), ValueError, r"bias must be \[D\] = \[3\].*\(4,\)"),
        (lambda: causal_conv1d(X, W, activation="relu"), ValueError, "activation.*'relu'"),
        (lambda: causal_conv1d(X, W, initial_state=torch.randn(2, 3, 4)), ValueError, r"\[2, 3, 3\].*\(2, 3, 4\)"),
        (lambda: causal_conv1d(X, W, initial_state="s"), TypeError, "initial_state must be a torch.Tensor"),
        (lambda: causal_conv1d(X, W, initial_state=torch.randn(2, 3, 3), reverse=True), ValueError, "no initial_state"),
        (lambda: causal_conv1d(X, W, output_final_state=True, reverse=True), ValueError, "no output_final_state"),
        (lambda: causal_conv1d(X, W, reverse=1), TypeError, "reverse must be a bool"),
        (lambda: causal_conv1d_step(X, W), ValueError, r"\[B, D\]"),
        (lambda: causal_conv1d_step(X[:, 0], W, state=torch.randn(2, 3, 4)), ValueError, r"state must be"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_h0", [False, True])
def test_triton_on_cuda_at_size(monkeypatch, dtype, with_h0):
    """The compiled kernels at the default tiles: several stretches of time, a partial channel block."""
    case = dict(width=4, with_bias=True, activation="silu", with_h0=with_h0)
    check_face("triton", "cuda", monkeypatch, shape=(3, 2051, 1540), dtype=dtype, seed=7, **case)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_reverse_on_cuda_at_size(monkeypatch, dtype):
    """The anti-causal kernels at the default tiles, as the bidirectional Mamba mixer runs them."""
    case = dict(width=4, activation="silu", dtype=dtype, seed=7)
    check_reverse_face("triton", "cuda", monkeypatch, shape=(3, 2051, 1540), **case)


class _ConvBlock(torch.nn.Module):
    """A projection, the causal conv with SiLU (from a carried state, and on to the next one), a readout."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 6)
        self.conv = torch.nn.Conv1d(6, 6, 4, groups=6)

    def forward(self, x, state):
        y, final = causal_conv1d(self.proj(x), self.conv.weight[:, 0], self.conv.bias, "silu", state, True)
        return (y**2).sum() + final.sum()


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_torch_compile_traces_without_graph_breaks(monkeypatch, small_tiles, backend, compiled_matches_eager):
    """The torch face (plain torch ops) and the Triton face (``lrnn::causal_conv1d_*``, under the interpreter on a
    CPU: aot_eager runs the custom ops eagerly, so only their fakes are traced)."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    device = "cuda" if ON_GPU and backend == "triton" else "cpu"
    torch.manual_seed(0)
    model = _ConvBlock().to(device)
    x = torch.randn(2, 11, 4, device=device)
    state = torch.randn(2, 6, 3, device=device, requires_grad=True)
    leaves = [*model.parameters(), state]
    compiled_matches_eager(model, (x, state), leaves)


@pytest.mark.parametrize("with_bias,with_h0,reverse", [(False, False, False), (True, True, False), (True, False, True)])
def test_custom_ops_pass_opcheck(small_tiles, with_bias, with_h0, reverse):
    """Schema, fake tensors, autograd registration and AOT dispatch of the Triton face's two ops."""
    from lrnn.kernels.causal_conv1d.op import causal_conv1d_bwd, causal_conv1d_fwd

    device = "cuda" if ON_GPU else "cpu"
    inputs = make_inputs((1, 6, 4), 4, with_bias, with_h0, torch.float32, seed=1)
    x, weight, bias, h0 = (None if t is None else t.to(device) for t in inputs)
    leaves = [None if t is None else t.clone().requires_grad_() for t in (x, weight, bias, h0)]
    torch.library.opcheck(causal_conv1d_fwd.op, (*leaves, True, reverse))
    torch.library.opcheck(causal_conv1d_bwd.op, (x, weight, bias, h0, torch.randn_like(x), True, reverse))
