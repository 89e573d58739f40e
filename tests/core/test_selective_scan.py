"""selective_scan: the composite face and the step form against the sequential float64 reference."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from lrnn.core.scan.selective import selective_scan, selective_scan_reference, selective_scan_step
from lrnn.core.scan.selective import triton as triton_face
from scan_testing import relative_error

NAMES = ("u", "dt", "A", "B", "C", "D", "z", "dt_bias", "initial_state")


def make_inputs(batch, steps, channels, groups, state_size, *, skip, gate, bias, with_h0, dtype, seed):
    """Mamba-like inputs: small positive ``dt`` (or pre-softplus logits), ``A = -exp(.)`` (S4D-real-like)."""
    gen = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)  # noqa: E731
    inputs = {
        "u": rand(batch, steps, channels),
        "dt": rand(batch, steps, channels) - 2.0 if bias else 0.1 * torch.rand(batch, steps, channels, generator=gen),
        "A": -torch.exp(0.5 * rand(channels, state_size)),
        "B": rand(batch, steps, groups, state_size),
        "C": rand(batch, steps, groups, state_size),
        "D": rand(channels) if skip else None,
        "z": rand(batch, steps, channels) if gate else None,
        "dt_bias": 0.5 * rand(channels) if bias else None,
        "initial_state": rand(batch, channels, state_size) if with_h0 else None,
    }
    return {
        k: (None if v is None else v.to(torch.float64 if k == "initial_state" else dtype)) for k, v in inputs.items()
    }


def run(fn, inputs, grad_y, grad_final, reverse):
    """Output, final state and the gradient of every given input under ``<y, dy> + <h_T, dh_T>``."""
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items() if v is not None}
    kwargs = {k: leaves.get(k) for k in inputs}
    y, final = fn(**kwargs, dt_softplus=inputs["dt_bias"] is not None, output_final_state=True, reverse=reverse)
    loss = (y.double() * grad_y).sum() + (final.double() * grad_final).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return y, final, dict(zip(leaves, grads, strict=True))


CASES = list(
    itertools.product(
        [
            (2, 1, 6, 1, 16),
            (2, 63, 12, 4, 16),
            (1, 130, 5, 1, 1),
            (2, 40, 8, 4, 1),
            (1, 45, 8, 2, 4),
            (1, 70, 32, 1, 16),
            (1, 48, 32, 1, 16),
            (1, 64, 8, 2, 4),
            (2, 40, 16, 2, 12),
        ],
        [(True, True, True), (False, False, False)],
        [False, True],
        [False, True],
    )
)


# The interpreter is slow: on a CPU the fused kernels get the cases with an initial state exactly when reverse,
# and at the long sizes (several time tiles; 40-60 s a case there) only those with every optional input. The
# backward and the forward without checkpoints load each step a step ahead at every N, the checkpointing forward up
# to N = 4 (PREFETCH_STATES). D = 32 at N = 16 runs the real tiles (``launch_config``: 32 channels a program, 8
# steps a tile) and takes seconds a case; T = 48 at N = 16 and T = 64 at N = 4 run whole tiles only (``EVEN``: the
# backward's masks constant), N = 12 masks states (16 a tile).
LONG_SIZES = [(2, 63, 12, 4, 16), (1, 130, 5, 1, 1), (1, 45, 8, 2, 4)]
FACE_CASES = [("torch", *case) for case in CASES] + [
    ("triton", *case)
    for case in CASES
    if torch.cuda.is_available() or (case[2] == case[3] and (case[0] not in LONG_SIZES or all(case[1])))
]


@pytest.mark.parametrize("backend,sizes,options,reverse,with_h0", FACE_CASES)
def test_faces_match_reference(monkeypatch, device, backend, sizes, options, reverse, with_h0):
    """The composite face (torch) and the fused kernels (triton; under the interpreter on a CPU)."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    assert_face_matches_reference(
        device if backend == "triton" else torch.device("cpu"), sizes, options, reverse, with_h0
    )


@pytest.mark.parametrize("replay,walk", [(1, 1), (1, 2), (2, 2)])
def test_unrolled_backward_matches_reference(monkeypatch, device, replay, walk):
    """The backward's step loops rolled or unrolled (``REPLAY_UNROLL``, ``WALK_UNROLL``; the default unrolls the
    replay 2x at N >= 16) at the real tiles."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    tiles, backward_launches = triton_face.launch_config, []
    unrolled = {"REPLAY_UNROLL": replay, "WALK_UNROLL": walk}

    def configured(*args):
        config = tiles(*args)
        if "WALK_UNROLL" not in config:
            return config
        backward_launches.append(config)
        return config | unrolled

    monkeypatch.setattr(triton_face, "launch_config", configured)
    assert_face_matches_reference(device, (1, 70, 32, 1, 16), (True, True, True), False, True)
    assert backward_launches


@pytest.mark.parametrize("checkpoint_steps,tile_steps", [(4, 2), (2, 2), (8, 4), (8, 8)])
def test_single_state_tiles_and_checkpoints(monkeypatch, device, checkpoint_steps, tile_steps):
    """At N = 1 the forward scans ``TILE`` steps a tile and stores the state every ``BT`` (a multiple), and the
    backward's tiles are ``BT`` steps: every pairing gives the reference's gradients, with a partial last tile and
    with whole tiles only (``EVEN``: unmasked loads and stores)."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    tiles = triton_face.launch_config

    def configured(*args):
        config = tiles(*args)
        assert config.get("single_state", False) == (args[2] == 1)
        return config | {"BT": checkpoint_steps} | ({"TILE": tile_steps} if "TILE" in config else {})

    monkeypatch.setattr(triton_face, "launch_config", configured)
    assert_face_matches_reference(device, (2, 23, 8, 4, 1), (True, True, True), True, True)
    assert_face_matches_reference(device, (1, 37, 8, 1, 1), (True, True, True), False, False)
    assert_face_matches_reference(device, (2, 24, 8, 2, 1), (True, True, True), True, True)


def test_single_state_wide_blocks(monkeypatch, device):
    """At widths where a group holds 64 channels the N = 1 defaults take 64 a program (the backward in two warps,
    the forward without checkpoints in one): the reference's outputs and gradients, odd and even lengths, and its
    output without gradients."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    backward = triton_face.launch_config(256, 4, 1, "bwd")
    assert (backward["BD"], backward["num_warps"]) == (64, 2)
    assert triton_face.launch_config(256, 4, 1, "fwd")["BD"] == 64
    assert_face_matches_reference(device, (2, 37, 256, 4, 1), (True, True, True), False, True)
    assert_face_matches_reference(device, (1, 40, 128, 1, 1), (True, False, True), True, False)
    assert_inference_matches_reference(device, (2, 37, 256, 4, 1), seed=5)


def assert_inference_matches_reference(dev, sizes, seed):
    """Output and final state of ``selective_scan`` without gradients on ``dev``, every optional input given,
    against the float64 loop."""
    inputs = make_inputs(*sizes, skip=True, gate=True, bias=True, with_h0=True, dtype=torch.float32, seed=seed)
    with torch.no_grad():
        y, final = selective_scan(
            **{k: None if v is None else v.to(dev) for k, v in inputs.items()}, dt_softplus=True,
            output_final_state=True,
        )  # fmt: skip
    y_ref, final_ref = selective_scan_reference(
        **{k: None if v is None else v.double() for k, v in inputs.items()}, dt_softplus=True, output_final_state=True
    )
    assert max(relative_error(y, y_ref), relative_error(final, final_ref)) < 5e-5


def assert_face_matches_reference(dev, sizes, options, reverse, with_h0):
    """Output, final state and every gradient of ``selective_scan`` on ``dev`` against the float64 loop."""
    skip, gate, bias = options
    inputs = make_inputs(*sizes, skip=skip, gate=gate, bias=bias, with_h0=with_h0, dtype=torch.float32, seed=sum(sizes))
    batch, steps, channels, _, state_size = sizes
    gen = torch.Generator().manual_seed(1)
    grad_y = torch.randn(batch, steps, channels, generator=gen, dtype=torch.float64)
    grad_final = torch.randn(batch, channels, state_size, generator=gen, dtype=torch.float64)
    on_dev = {k: None if v is None else v.to(dev) for k, v in inputs.items()}
    y, final, grads = run(selective_scan, on_dev, grad_y.to(dev), grad_final.to(dev), reverse)
    inputs64 = {k: None if v is None else v.double() for k, v in inputs.items()}
    y_ref, final_ref, grads_ref = run(selective_scan_reference, inputs64, grad_y, grad_final, reverse)
    assert y.dtype == torch.float32 and final.dtype == torch.float32
    errors = {"y": relative_error(y, y_ref), "final_state": relative_error(final, final_ref)}
    errors.update({f"d{k}": relative_error(grads[k], grads_ref[k]) for k in grads_ref})
    assert set(grads) == set(grads_ref) == {k for k in NAMES if inputs[k] is not None}
    assert max(errors.values()) < 5e-5, errors


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_low_precision_inputs(monkeypatch, device, backend, dtype):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    inputs = make_inputs(2, 50, 8, 1, 16, skip=True, gate=True, bias=True, with_h0=True, dtype=dtype, seed=3)
    on_dev = {k: None if v is None else v.to(dev) for k, v in inputs.items()}
    y, final = selective_scan(**on_dev, dt_softplus=True, output_final_state=True)
    y_ref, final_ref = selective_scan_reference(
        **{k: None if v is None else v.double() for k, v in inputs.items()}, dt_softplus=True, output_final_state=True
    )
    assert y.dtype == dtype and final.dtype == torch.float32
    assert relative_error(y, y_ref) < 1e-2 and relative_error(final, final_ref) < 1e-2


@pytest.mark.parametrize("groups,state_size", [(1, 16), (4, 1)])
def test_step_form_matches_parallel_form(monkeypatch, groups, state_size):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    inputs = make_inputs(2, 20, 8, groups, state_size, skip=True, gate=True, bias=True, with_h0=True,
                         dtype=torch.float32, seed=5)  # fmt: skip
    inputs["initial_state"] = inputs["initial_state"].float()
    y, final = selective_scan(**inputs, dt_softplus=True, output_final_state=True)
    state, outputs = inputs["initial_state"], []
    for t in range(20):
        y_t, state = selective_scan_step(
            inputs["u"][:, t], inputs["dt"][:, t], inputs["A"], inputs["B"][:, t], inputs["C"][:, t], inputs["D"],
            inputs["z"][:, t], inputs["dt_bias"], dt_softplus=True, state=state,
        )  # fmt: skip
        outputs.append(y_t)
    torch.testing.assert_close(torch.stack(outputs, 1), y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state, final, rtol=1e-5, atol=1e-5)


def test_softplus_and_bias_are_applied(monkeypatch):
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "torch")
    inputs = make_inputs(1, 7, 4, 1, 2, skip=False, gate=False, bias=True, with_h0=False, dtype=torch.float64, seed=9)
    y, _ = selective_scan(**inputs, dt_softplus=True)
    explicit = dict(inputs, dt=F.softplus(inputs["dt"] + inputs["dt_bias"]), dt_bias=None)
    torch.testing.assert_close(y, selective_scan_reference(**explicit)[0])


@pytest.mark.parametrize(
    "change,error,message",
    [
        (dict(dt=torch.rand(2, 9, 5)), ValueError, r"dt must have shape \(2, 9, 6\)"),
        (dict(A=torch.rand(5, 4)), ValueError, "A must be"),
        (dict(B=torch.rand(2, 9, 4, 4)), ValueError, "G dividing D"),
        (dict(C=torch.rand(2, 9, 1, 3)), ValueError, r"C must have shape \(2, 9, 1, 4\)"),
        (dict(D=torch.rand(7)), ValueError, r"D must have shape \(6,\)"),
        (dict(u=torch.ones(2, 9, 6, dtype=torch.int64)), TypeError, "floating point"),
        (dict(initial_state=torch.rand(2, 6)), ValueError, r"initial_state must have shape \(2, 6, 4\)"),
        (dict(z=torch.rand(2, 9, 6, device="meta")), ValueError, "meta"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(change, error, message):
    inputs = dict(u=torch.rand(2, 9, 6), dt=torch.rand(2, 9, 6), A=-torch.rand(6, 4), B=torch.rand(2, 9, 1, 4),
                  C=torch.rand(2, 9, 1, 4))  # fmt: skip
    with pytest.raises(error, match=message):
        selective_scan(**{**inputs, **change})


@pytest.mark.gpu
@pytest.mark.parametrize("groups,state_size", [(1, 16), (4, 1)])
def test_composite_face_runs_on_cuda(groups, state_size):
    inputs = make_inputs(2, 300, 16, groups, state_size, skip=True, gate=True, bias=True, with_h0=True,
                         dtype=torch.float32, seed=2)  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    grad_y = torch.randn(2, 300, 16, generator=gen, dtype=torch.float64)
    grad_final = torch.randn(2, 16, state_size, generator=gen, dtype=torch.float64)
    on_gpu = {k: None if v is None else v.cuda() for k, v in inputs.items()}
    y, final, grads = run(selective_scan, on_gpu, grad_y.cuda(), grad_final.cuda(), False)
    inputs64 = {k: None if v is None else v.double() for k, v in inputs.items()}
    y_ref, final_ref, grads_ref = run(selective_scan_reference, inputs64, grad_y, grad_final, False)
    errors = {"y": relative_error(y, y_ref), "final_state": relative_error(final, final_ref)}
    errors.update({f"d{k}": relative_error(grads[k], grads_ref[k]) for k in grads_ref})
    assert max(errors.values()) < 5e-5, errors


class _SelectiveBlock(torch.nn.Module):
    """A small Mamba-like block: every input of ``selective_scan`` comes from a parameter or a projection."""

    def __init__(self, reverse: bool):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.reverse = reverse
        self.proj = torch.nn.Linear(4, 3 * 8 + 2 * 2 * 4)
        self.A = torch.nn.Parameter(-torch.rand(8, 4, generator=gen) - 0.5)
        self.D = torch.nn.Parameter(torch.randn(8, generator=gen))
        self.dt_bias = torch.nn.Parameter(0.1 * torch.randn(8, generator=gen))

    def forward(self, x, h0):
        u, dt, z, bc = self.proj(x).split([8, 8, 8, 16], dim=-1)
        B, C = bc.unflatten(-1, (2, 2, 4)).unbind(2)
        y, final = selective_scan(
            u, dt, self.A, B, C, self.D, z, self.dt_bias, True, h0, output_final_state=True, reverse=self.reverse
        )
        return (y**2).sum() + final.sum()


@pytest.mark.parametrize("backend,reverse", [("torch", False), ("torch", True), ("triton", True)])
def test_torch_compile_traces_without_graph_breaks(monkeypatch, device, backend, reverse, compiled_matches_eager):
    """The composite face (``linear_scan``'s custom op and torch ops) and the fused face (``lrnn::selective_scan_*``,
    under the interpreter on a CPU: aot_eager runs the custom ops eagerly, so only their fakes are traced)."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    torch.manual_seed(0)
    model = _SelectiveBlock(reverse).to(dev)
    x = torch.randn(2, 9, 4, device=dev)
    h0 = torch.randn(2, 8, 4, device=dev, requires_grad=True)
    leaves = [*model.parameters(), h0]
    compiled_matches_eager(model, (x, h0), leaves)


@pytest.mark.parametrize("full", [False, True])
def test_custom_ops_pass_opcheck(device, full):
    """Schema, fake tensors, autograd registration and AOT dispatch of the fused face's two ops, with and without
    the optional inputs."""
    from lrnn.core.scan.selective.op import selective_scan_bwd, selective_scan_fwd

    inputs = make_inputs(2, 5, 4, 2, 4, skip=full, gate=full, bias=full, with_h0=full, dtype=torch.float32, seed=4)
    inputs = {k: None if v is None else v.float().to(device) for k, v in inputs.items()}
    u, dt, A, B, C, D, z, dt_bias, h0 = (inputs[k] for k in NAMES)
    leaves = [None if t is None else t.clone().requires_grad_() for t in (u, dt, A, B, C, D, z, dt_bias)]
    h0_leaf = None if h0 is None else h0.clone().requires_grad_()
    torch.library.opcheck(selective_scan_fwd.op, (*leaves, full, h0_leaf, full, True))
    torch.library.opcheck(selective_scan_fwd.op, (u, dt, A, B, C, D, z, dt_bias, full, h0, full, False))
    _, _, checkpoints = selective_scan_fwd(u, dt, A, B, C, D, z, dt_bias, full, h0, full, True)
    grad_y, grad_final = torch.randn_like(u), torch.randn(2, 4, 4, device=device) if full else None
    torch.library.opcheck(
        selective_scan_bwd.op, (u, dt, A, B, C, D, z, dt_bias, full, checkpoints, grad_y, grad_final, full)
    )


TIME_SPLIT_CASES = [  # (sizes B, T, D, G, N), options (skip, gate, bias), reverse, with_h0, pieces
    ((2, 37, 6, 2, 4), (True, True, True), False, True, 4),  # T padded to 40, softplus padding
    ((1, 37, 6, 1, 4), (False, False, False), True, False, 3),  # no softplus, no bias, reverse
    ((2, 24, 4, 1, 16), (True, False, True), True, True, 3),  # no padding
]


@pytest.mark.parametrize("sizes,options,reverse,with_h0,pieces", TIME_SPLIT_CASES)
def test_time_split_matches_one_pass(monkeypatch, device, sizes, options, reverse, with_h0, pieces):
    """Inference cut into time pieces (time_split.py) gives the single scan's outputs and final state."""
    from lrnn.core.scan.selective import time_split

    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    skip, gate, bias = options
    inputs = make_inputs(*sizes, skip=skip, gate=gate, bias=bias, with_h0=with_h0, dtype=torch.float32, seed=7)
    if not bias and sizes[1] % pieces:  # a bias without softplus pads with -bias: cover it in the no-softplus case
        inputs["dt_bias"] = 0.01 * torch.rand(sizes[2], generator=torch.Generator().manual_seed(2))
    on_dev = {k: None if v is None else v.to(device) for k, v in inputs.items()}
    on_dev["initial_state"] = None if not with_h0 else on_dev["initial_state"].float()
    args = [on_dev[k].contiguous() if on_dev[k] is not None else None for k in NAMES[:-1]]
    y, final = time_split.selective_scan_time_split(*args, bias, on_dev["initial_state"], reverse, pieces)
    y_ref, final_ref = selective_scan_reference(
        **{k: None if v is None else v.double() for k, v in inputs.items()},
        dt_softplus=bias, output_final_state=True, reverse=reverse,
    )  # fmt: skip
    assert y.shape == y_ref.shape and final.shape == final_ref.shape
    assert relative_error(y, y_ref) < 5e-5 and relative_error(final, final_ref) < 5e-5


@pytest.mark.parametrize("steps", [71, 48])
def test_unrolled_inference_forward(monkeypatch, device, steps):
    """Without gradients the N = 16 forward walks 2 steps a loop iteration (``UNROLL``) at the real tiles: the
    reference's output and final state at an odd and an even length."""
    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    assert triton_face.launch_config(32, 1, 16, "fwd")["UNROLL"] == 2
    assert_inference_matches_reference(device, (1, steps, 32, 1, 16), seed=3)


def test_inference_dispatch_cuts_long_narrow_scans(monkeypatch, device):
    """Without gradients, few channels over many steps go through the time split (thresholds lowered here)."""
    from lrnn.core.scan.selective import time_split

    monkeypatch.setenv("LRNN_SCAN_BACKEND", "triton")
    monkeypatch.setattr(time_split, "MIN_PIECE", 8)
    assert time_split.pieces_for(batch=1, channels=4, steps=40, block_channels=4) == 5
    assert time_split.pieces_for(batch=64, channels=4096, steps=4096, block_channels=32) == 1
    calls = []
    monkeypatch.setattr(time_split, "selective_scan_pieces_fwd", lambda *a: calls.append(a[-2]) or _pieces_fwd(*a))
    inputs = make_inputs(1, 40, 4, 1, 4, skip=True, gate=True, bias=True, with_h0=True, dtype=torch.float32, seed=9)
    on_dev = {k: None if v is None else v.to(device) for k, v in inputs.items()}
    with torch.no_grad():
        y, final = selective_scan(**on_dev, dt_softplus=True, output_final_state=True)
    assert calls == [8, 8]  # both passes ran on pieces of 8 steps
    y_ref, final_ref = selective_scan_reference(
        **{k: None if v is None else v.double() for k, v in inputs.items()}, dt_softplus=True, output_final_state=True
    )
    assert relative_error(y, y_ref) < 5e-5 and relative_error(final, final_ref) < 5e-5


def _pieces_fwd(*args):
    from lrnn.core.scan.selective.op import selective_scan_pieces_fwd

    return selective_scan_pieces_fwd(*args)


@pytest.mark.parametrize("first_pass", [True, False])
def test_pieces_pass_per_piece_states_and_dt_sums(device, first_pass):
    """One pass of the time split over 3 pieces (7, 7 and 6 steps) equals the single scan of each piece from its
    own initial state: the states after each piece, the pieces' summed ``dt`` (first pass) or the outputs
    (second pass); the custom op passes ``opcheck``."""
    from lrnn.core.scan.selective.op import selective_scan_pieces_fwd

    inputs = make_inputs(2, 20, 6, 2, 4, skip=True, gate=True, bias=True, with_h0=False, dtype=torch.float32, seed=5)
    u, dt, A, B, C, D, z, dt_bias, _ = (None if inputs[k] is None else inputs[k].to(device) for k in NAMES)
    starts = torch.randn(2 * 3, 6, 4, generator=torch.Generator().manual_seed(6)).to(device)
    args = (u, dt, A, B, C, D, z, dt_bias, True, starts, True, 7, first_pass)
    torch.library.opcheck(selective_scan_pieces_fwd.op, args)
    y, states, dt_sums = selective_scan_pieces_fwd(*args)
    for piece, (lo, hi) in enumerate([(0, 7), (7, 14), (14, 20)]):
        for b in range(2):
            part = {k: None if v is None else v.double() for k, v in inputs.items()}
            for k in ("u", "dt", "B", "C", "z"):
                part[k] = part[k][b : b + 1, lo:hi]
            part["initial_state"] = starts[b * 3 + piece : b * 3 + piece + 1].double().cpu()
            if first_pass:
                part["D"] = part["z"] = None
            y_ref, state_ref = selective_scan_reference(**part, dt_softplus=True, output_final_state=True, reverse=True)
            assert relative_error(states[b * 3 + piece : b * 3 + piece + 1], state_ref) < 1e-5
            if first_pass:
                dt_ref = torch.nn.functional.softplus(part["dt"] + part["dt_bias"]).sum(1)
                assert relative_error(dt_sums[b * 3 + piece], dt_ref[0]) < 1e-5
            else:
                assert relative_error(y[b : b + 1, lo:hi], y_ref) < 1e-5
    assert (y.numel() == 0) == first_pass and (dt_sums.numel() == 0) != first_pass
