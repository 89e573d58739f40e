"""window_gather / window_scatter: both faces against float64 selection matrices, padding gradients, round trips,
compile and opcheck, errors."""

import pytest
import torch
from lrnn.kernels.window_gather import triton as triton_face
from lrnn.kernels.window_gather import window_gather, window_scatter
from lrnn.kernels.window_gather.op import gather_rows, gather_rows_bwd
from lrnn.pointcloud.window_groups import WindowGroups, group_windows

ON_GPU = torch.cuda.is_available()
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}


@pytest.fixture
def small_tiles(monkeypatch):
    """Under the interpreter: tiles of 8 rows by 32 channels, so C = 48 and 100 end in partial channel blocks."""
    if not ON_GPU:
        monkeypatch.setattr(triton_face, "launch_config", lambda channels: {"BR": 8, "BC": 32, "num_warps": 1})


def window_maps(num_voxels: int, num_padding: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(voxel_at_slot [S], slot_of_voxel [N])`` with ``S = N + num_padding``: every voxel gets one real slot at a
    random place, and the padding slots hold random voxels (some copied several times, most not at all)."""
    slots = num_voxels + num_padding
    slot_of_voxel = torch.randperm(slots, generator=gen)[:num_voxels]
    voxel_at_slot = torch.randint(0, num_voxels, (slots,), generator=gen)
    voxel_at_slot[slot_of_voxel] = torch.arange(num_voxels)
    return voxel_at_slot, slot_of_voxel


def selection(index: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The float64 matrix ``P [K, M]`` (sparse) with ``P[i, index[i]] = 1``: ``src[index] = P @ src``, and the
    gradient of ``src`` is ``P.T @ d_out``."""
    rows = torch.stack([torch.arange(len(index)), index.long()])
    ones = torch.ones(len(index), dtype=torch.float64)
    return torch.sparse_coo_tensor(rows, ones, (len(index), num_rows), check_invariants=True)


def relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return ((got.double().cpu() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()


def check_faces(backend, device, monkeypatch, *, voxels, padding, channels, dtype, index_dtype, seed):
    """Both ops and the gradients of their inputs against the selection matrices, in float64."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    gen = torch.Generator().manual_seed(seed)
    voxel_at_slot, slot_of_voxel = window_maps(voxels, padding, gen)
    slots = len(voxel_at_slot)
    features = torch.randn(voxels, channels, generator=gen).to(dtype)
    grouped = torch.randn(slots, channels, generator=gen).to(dtype)
    d_grouped = torch.randn(slots, channels, generator=gen).to(dtype)
    d_features = torch.randn(voxels, channels, generator=gen).to(dtype)

    leaves = [features.to(device).requires_grad_(), grouped.to(device).requires_grad_()]
    gathered = window_gather(leaves[0], voxel_at_slot.to(device, index_dtype))
    scattered = window_scatter(leaves[1], slot_of_voxel.to(device, index_dtype))
    loss = (gathered * d_grouped.to(device)).sum() + (scattered * d_features.to(device)).sum()
    grads = torch.autograd.grad(loss, leaves)

    gather_matrix, scatter_matrix = selection(voxel_at_slot, voxels), selection(slot_of_voxel, slots)
    want = {
        "gathered": gather_matrix @ features.double(),
        "scattered": scatter_matrix @ grouped.double(),
        "d_features": gather_matrix.T @ d_grouped.double(),
        "d_grouped": scatter_matrix.T @ d_features.double(),
    }
    got = dict(zip(want, (gathered, scattered, *grads), strict=True))
    for name, value in got.items():
        assert value.dtype == dtype and value.shape == want[name].shape, name
    assert torch.equal(gathered.cpu(), features[voxel_at_slot]) and torch.equal(scattered.cpu(), grouped[slot_of_voxel])
    errors = {name: relative_error(got[name], want[name]) for name in want}
    assert max(errors.values()) < TOLERANCE[dtype], errors


FACE_CASES = [  # (dtype, index dtype, C)
    (torch.float32, torch.int64, 48), (torch.float32, torch.int32, 100), (torch.bfloat16, torch.int64, 8),
    (torch.bfloat16, torch.int32, 48), (torch.float16, torch.int64, 100), (torch.float64, torch.int32, 8),
]  # fmt: skip


@pytest.mark.parametrize("dtype,index_dtype,channels", FACE_CASES)
def test_torch_face(monkeypatch, dtype, index_dtype, channels):
    case = dict(dtype=dtype, index_dtype=index_dtype, channels=channels)
    check_faces("torch", "cpu", monkeypatch, voxels=150, padding=70, seed=channels, **case)


@pytest.mark.parametrize("dtype,index_dtype,channels", FACE_CASES)
def test_triton_face(monkeypatch, small_tiles, device, dtype, index_dtype, channels):
    case = dict(dtype=dtype, index_dtype=index_dtype, channels=channels)
    check_faces("triton", device, monkeypatch, voxels=150, padding=70, seed=channels, **case)


@pytest.mark.parametrize("op,rows", [(window_gather, 7), (window_scatter, 13)])
def test_gradcheck_torch_face(monkeypatch, op, rows):
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", "torch")
    gen = torch.Generator().manual_seed(rows)
    voxel_at_slot, slot_of_voxel = window_maps(7, 6, gen)
    index = voxel_at_slot if op is window_gather else slot_of_voxel
    src = torch.randn(rows, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: op(x, index), (src,))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_padding_copies_add_to_their_voxel(monkeypatch, small_tiles, device, backend):
    """Voxel 0 has one padding copy, voxel 2 fills a whole group of 8 slots by itself, voxel 3 is in no slot; the
    scatter gives its padding slots exactly zero gradient."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    voxel_at_slot = torch.tensor([0, 1, 0, 1] + [2] * 8, device=dev)
    slot_of_voxel = torch.tensor([0, 1, 4], device=dev)
    features = torch.randn(4, 40, device=dev, requires_grad=True)
    d_grouped = torch.randn(12, 40, device=dev)
    (d_features,) = torch.autograd.grad(window_gather(features, voxel_at_slot), features, d_grouped)
    torch.testing.assert_close(d_features[0], d_grouped[0] + d_grouped[2], rtol=0, atol=0)
    torch.testing.assert_close(d_features[1], d_grouped[1] + d_grouped[3], rtol=0, atol=0)
    torch.testing.assert_close(d_features[2], d_grouped[4:].double().sum(0).float(), rtol=1e-6, atol=1e-6)
    assert torch.equal(d_features[3], torch.zeros(40, device=dev))

    grouped = torch.randn(12, 40, device=dev, requires_grad=True)
    d_out = torch.randn(3, 40, device=dev)
    (d_slots,) = torch.autograd.grad(window_scatter(grouped, slot_of_voxel), grouped, d_out)
    assert torch.equal(d_slots[slot_of_voxel], d_out)
    padding = torch.ones(12, dtype=torch.bool, device=dev)
    padding[slot_of_voxel] = False
    assert torch.equal(d_slots[padding], torch.zeros(9, 40, device=dev))


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_scatter_of_gather_is_the_identity(monkeypatch, small_tiles, device, backend, dtype):
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    voxel_at_slot, slot_of_voxel = (t.to(dev) for t in window_maps(200, 56, torch.Generator().manual_seed(3)))
    features = torch.randn(200, 24, device=dev).to(dtype)
    assert torch.equal(window_scatter(window_gather(features, voxel_at_slot), slot_of_voxel), features)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_inputs(monkeypatch, small_tiles, device, backend):
    """No slots (every voxel gets zero gradient), no voxels, no channels."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    features = torch.randn(5, 6, device=dev, requires_grad=True)
    empty = torch.zeros(0, dtype=torch.long, device=dev)
    grouped = window_gather(features, empty)
    assert grouped.shape == (0, 6)
    assert torch.equal(torch.autograd.grad(grouped.sum(), features)[0], torch.zeros(5, 6, device=dev))
    assert window_scatter(torch.zeros(0, 6, device=dev), empty).shape == (0, 6)
    assert window_gather(torch.zeros(5, 0, device=dev), torch.tensor([4, 0], device=dev)).shape == (2, 0)


COUNTS = [37, 0, 5, 32]  # a partial last group, an empty sample, fewer voxels than a group, exact groups


def random_coords(counts: list[int], seed: int) -> torch.Tensor:
    """Unique voxel coordinates ``[N, 4]`` (batch, z, y, x) on a 4 x 30 x 40 grid, ``counts[b]`` in sample ``b``."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for b, n in enumerate(counts):
        flat = torch.randperm(4 * 30 * 40, generator=gen)[:n]
        rows.append(torch.stack([torch.full_like(flat, b), flat // 1200, flat // 40 % 30, flat % 40], dim=1))
    return torch.cat(rows).int()


def test_window_groups_run_both_faces_alike(monkeypatch, small_tiles, device):
    """``WindowGroups.gather``/``scatter`` through the Triton face give the torch face's outputs and gradients."""
    groups = group_windows(random_coords(COUNTS, seed=5), len(COUNTS), (4, 30, 40), (13, 13, 4), 16, "y", True)
    features = torch.randn(sum(COUNTS), 12)
    weight = torch.randn(groups.num_groups, 16, 12)
    results = []
    for backend in ("torch", "triton"):
        monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
        dev = device if backend == "triton" else torch.device("cpu")
        leaf = features.to(dev).requires_grad_()
        on_dev = WindowGroups(groups.voxel_at_slot.to(dev), groups.slot_of_voxel.to(dev), groups.group_size)
        out = on_dev.scatter(on_dev.gather(leaf) * weight.to(dev))
        results.append((out.cpu(), torch.autograd.grad(out.square().sum(), leaf)[0].cpu()))
    torch.testing.assert_close(results[1], results[0], rtol=1e-6, atol=1e-6)


class _GroupedBlock(torch.nn.Module):
    """A projection, the gather into slots, a per-slot scale, the scatter back, a readout."""

    def __init__(self, voxel_at_slot: torch.Tensor, slot_of_voxel: torch.Tensor):
        super().__init__()
        self.proj = torch.nn.Linear(4, 10)
        self.scale = torch.nn.Parameter(torch.randn(len(voxel_at_slot), 1))
        self.voxel_at_slot, self.slot_of_voxel = voxel_at_slot, slot_of_voxel

    def forward(self, x):
        grouped = window_gather(self.proj(x), self.voxel_at_slot) * self.scale
        return window_scatter(grouped, self.slot_of_voxel).square().sum()


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_torch_compile_traces_without_graph_breaks(monkeypatch, small_tiles, device, backend, compiled_matches_eager):
    """The torch face (indexing) and the Triton face (``lrnn::gather_rows*``; aot_eager runs them eagerly)."""
    monkeypatch.setenv("LRNN_KERNEL_BACKEND", backend)
    dev = device if backend == "triton" else torch.device("cpu")
    torch.manual_seed(0)
    voxel_at_slot, slot_of_voxel = (t.to(dev) for t in window_maps(30, 10, torch.Generator().manual_seed(0)))
    model = _GroupedBlock(voxel_at_slot, slot_of_voxel).to(dev)
    x = torch.randn(30, 4, device=dev)
    compiled_matches_eager(model, (x,), list(model.parameters()))


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_custom_ops_pass_opcheck(small_tiles, device, index_dtype):
    """Schema, fake tensors, autograd registration and AOT dispatch of the Triton face's two ops."""
    voxel_at_slot, _ = window_maps(9, 5, torch.Generator().manual_seed(2))
    index = voxel_at_slot.to(device, index_dtype)
    features = torch.randn(9, 40, device=device, requires_grad=True)
    torch.library.opcheck(gather_rows.op, (features, index))
    torch.library.opcheck(gather_rows_bwd.op, (torch.randn(14, 40, device=device), index, 9))


X = torch.randn(6, 3)
IDX = torch.tensor([0, 5, 2])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: window_gather(X[0], IDX), ValueError, r"features must be \[N, C\], got shape \(3,\)"),
        (lambda: window_gather(X.int(), IDX), TypeError, "features must be float16.*torch.int32"),
        (lambda: window_gather(X.numpy(), IDX), TypeError, "features must be a torch.Tensor, got ndarray"),
        (lambda: window_gather(X, IDX.float()), TypeError, "voxel_at_slot must be int32 or int64.*float32"),
        (lambda: window_gather(X, IDX[None]), ValueError, r"voxel_at_slot must be one-dimensional.*\(1, 3\)"),
        (lambda: window_gather(X, [0, 1]), TypeError, "voxel_at_slot must be a torch.Tensor, got list"),
        (lambda: window_gather(X, IDX.to("meta")), ValueError, "voxel_at_slot is on meta but features is on cpu"),
        (lambda: window_gather(X, torch.tensor([0, 6])), ValueError, r"6 rows of features.*from 0 to 6"),
        (lambda: window_gather(X, torch.tensor([-1, 2], dtype=torch.int32)), ValueError, "from -1 to 2"),
        (lambda: window_scatter(X[None], IDX), ValueError, r"grouped must be \[S, C\].*\(1, 6, 3\)"),
        (lambda: window_scatter(X, torch.tensor([3, 9])), ValueError, r"slot_of_voxel must index the 6 rows"),
    ],
)
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_on_cuda_at_size(monkeypatch, dtype):
    """The compiled kernels at the default tiles and LION's sizes: 20k voxels, C = 128, a fifth of slots padding."""
    check_faces("triton", "cuda", monkeypatch, voxels=20000, padding=4000, channels=128, dtype=dtype,
                index_dtype=torch.int64, seed=11)  # fmt: skip


def test_kernels_compile_for_the_h100(compiles_for_the_h100):
    """Both kernels compile for sm_90 as a launch there specialises them (aligned pointers, ``C`` a multiple of 16):
    Triton 3.6 once rejected the backward only there, which the interpreter cannot show."""
    compiles_for_the_h100("window_gather_kernels", (48, 100, 128), ("bf16", "fp16", "fp32", "fp64"))
