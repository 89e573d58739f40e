"""Checkpoints move between the two sparse-convolution backends: spconv 2.3.8 on the CPU, spconv-triton on CUDA.

* CPU: a ``LION3DBackbone`` checkpoint from ``save_pretrained`` holds CPU tensors only, its sparse convolution
  weights in the layout both backends share (``[C_out, k_z, k_y, k_x, C_in]``), and ``from_pretrained`` gives the
  same outputs back.
* GPU (marked ``gpu``; skipped without CUDA, and without either backend, the reason naming the package): the same
  sparse convolution layers with the same weights give the same outputs and gradients through spconv on the CPU and
  spconv-triton on CUDA; LION's and SECOND's checkpoints give the same encoded voxels on CUDA and, in a subprocess
  that hides the GPU so that ``lrnn.pointcloud.sparse_conv`` picks spconv, on the CPU.

The GPU tests let spconv-triton try only its first candidate tile per kernel (``spconv_triton_autotune_limit``): the
tiles change the order of the sums, not the results, and the full autotune of these layers' many channel counts
outlasts a GPU test run on a fresh machine.

``lrnn.pointcloud`` is imported inside the tests: on a GPU machine without spconv-triton it cannot import.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LION_GRID = (24, 20, 8)  # (X, Y, Z), the small LION's grid height
SECOND_GRID = (64, 56, 40)  # SECOND needs Z >= 24; this one ends at (2, 7, 8)
SECOND_CFG = {"CHANNELS": [8, 16, 16, 16], "OUTPUT_CHANNELS": 16}
MISSING = {
    "spconv_triton.pytorch": "spconv-triton (the CUDA backend) is not installed: pip install spconv-triton",
    "spconv.pytorch": "spconv 2.3.8 (the CPU backend) is not installed: pip install 'lrnn[pointcloud]'",
}


def backend(module: str):
    """``spconv.pytorch`` or ``spconv_triton.pytorch``; skips the test, naming the package, when it is missing."""
    return pytest.importorskip(module, reason=MISSING[module])


def random_voxel_batch(counts: list[int], grid: tuple[int, int, int], channels: int, seed: int = 0) -> dict:
    """OpenPCDet's batch dict on the CPU: unique ``voxel_coords [N, 4]`` int32 (batch, z, y, x) on ``grid (X, Y, Z)``,
    ``counts[b]`` in sample ``b``, ``voxel_features [N, channels]`` and ``batch_size``."""
    from pointcloud_testing import random_voxels  # imports lrnn.pointcloud: only where a backend is there

    x, y, z = grid
    coords, features = random_voxels(counts, (z, y, x), channels, seed)
    return {"voxel_features": features, "voxel_coords": coords, "batch_size": len(counts)}


@pytest.fixture
def one_autotune_candidate():
    """spconv-triton's autotuned kernels limited to their first candidate tile during the test (module docstring)."""
    from lrnn.pointcloud.sparse_conv import spconv_triton_autotune_limit

    with spconv_triton_autotune_limit(1):
        yield


def test_autotune_limit_cuts_the_candidates_and_restores_them():
    backend("spconv_triton.pytorch")
    from lrnn.pointcloud.sparse_conv import spconv_triton_autotune_limit
    from spconv_triton.pytorch._impl import gemm

    full = list(gemm._gather_gemm_kernel.configs)
    assert len(full) > 2
    with spconv_triton_autotune_limit(2) as limited:
        assert limited >= 2 and gemm._gather_gemm_kernel.configs == full[:2]
    assert gemm._gather_gemm_kernel.configs == full
    with pytest.raises(ValueError, match="at least 1"), spconv_triton_autotune_limit(0):
        pass


def row_order(indices: torch.Tensor) -> torch.Tensor:
    """The permutation sorting voxels ``indices [N, 4]`` by (batch, z, y, x): backends may emit them in any order."""
    key = torch.zeros(len(indices), dtype=torch.long, device=indices.device)
    for column in indices.long().unbind(1):
        key = key * 2**15 + column
    return key.argsort()


def encode(name: str, checkpoint: str, batch_path: str, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded voxels of the ``name`` ("lion" or "second") backbone saved at ``checkpoint``, in eval mode, on the
    batch saved at ``batch_path``, run on ``device``: ``indices [N', 4]`` and ``features [N', C]`` on the CPU,
    sorted by (batch, z, y, x). The GPU test also runs it in a subprocess on the CPU backend."""
    from lrnn.pointcloud.backbone import LION3DBackbone
    from lrnn.pointcloud.second_backbone import SECONDBackbone

    if name == "lion":
        backbone = LION3DBackbone.from_pretrained(checkpoint)
    else:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        backbone = SECONDBackbone(**saved["init_args"])
        backbone.load_state_dict(saved["state_dict"])
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in torch.load(batch_path, weights_only=True).items()}
    with torch.no_grad():
        encoded = backbone.to(device).eval()(batch)["encoded_spconv_tensor"]
    order = row_order(encoded.indices)
    return encoded.indices[order].cpu(), encoded.features[order].cpu()


def test_lion_checkpoint_holds_cpu_tensors_in_the_shared_layout_and_round_trips(tmp_path):
    """On the machine's backend: spconv on the CPU, or spconv-triton on CUDA where there is a GPU (the adapter picks
    one backend per machine, and spconv-triton runs CUDA tensors only)."""
    from lrnn.pointcloud.backbone import LION3DBackbone
    from pointcloud_testing import SMALL_LION

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    backbone = LION3DBackbone(SMALL_LION, 4, LION_GRID).to(device).eval()
    path = tmp_path / "lion.pt"
    backbone.save_pretrained(path)
    state = torch.load(path, weights_only=True)["state_dict"]  # no map_location: tensors as saved
    assert all(tensor.device.type == "cpu" for tensor in state.values())
    conv_weights = {key: tuple(tensor.shape) for key, tensor in state.items() if tensor.ndim == 5}
    assert conv_weights and set(conv_weights.values()) == {(16, 3, 3, 3, 16)}, conv_weights

    batch = {key: value.to(device) if torch.is_tensor(value) else value
             for key, value in random_voxel_batch([150, 90], LION_GRID, 4).items()}  # fmt: skip
    loaded = LION3DBackbone.from_pretrained(path).to(device).eval()
    with torch.no_grad():
        want = backbone(dict(batch))["encoded_spconv_tensor"]
        got = loaded(dict(batch))["encoded_spconv_tensor"]
    assert torch.equal(got.indices, want.indices) and torch.equal(got.features, want.features)


@pytest.mark.gpu
@pytest.mark.usefixtures("one_autotune_candidate")
def test_sparse_conv_layers_agree_between_spconv_on_cpu_and_spconv_triton_on_cuda():
    cuda_lib, cpu_lib = backend("spconv_triton.pytorch"), backend("spconv.pytorch")

    def layers(lib):
        return lib.SparseSequential(
            lib.SubMConv3d(4, 8, 3, padding=1, bias=True, indice_key="subm1"),
            lib.SubMConv3d(8, 8, 3, padding=1, bias=False, indice_key="subm1"),
            lib.SparseConv3d(8, 16, 3, stride=2, padding=1, bias=False),
            lib.SubMConv3d(16, 16, 3, padding=1, bias=True),
            lib.SparseConv3d(16, 16, (3, 1, 1), stride=(2, 1, 1), bias=False),
        )

    torch.manual_seed(0)
    cpu_layers, cuda_layers = layers(cpu_lib), layers(cuda_lib).cuda()
    cuda_layers.load_state_dict(cpu_layers.state_dict())  # strict: the same names and shapes
    batch = random_voxel_batch([400, 300], SECOND_GRID, 4)
    shape, coords = list(SECOND_GRID[::-1]), batch["voxel_coords"]
    cpu_in = batch["voxel_features"].clone().requires_grad_()
    cuda_in = batch["voxel_features"].cuda().requires_grad_()
    cpu_out = cpu_layers(cpu_lib.SparseConvTensor(cpu_in, coords, shape, 2))
    cuda_out = cuda_layers(cuda_lib.SparseConvTensor(cuda_in, coords.cuda(), shape, 2))
    assert list(cuda_out.spatial_shape) == list(cpu_out.spatial_shape)

    cpu_order, cuda_order = row_order(cpu_out.indices), row_order(cuda_out.indices)
    assert torch.equal(cuda_out.indices[cuda_order].cpu(), cpu_out.indices[cpu_order])
    torch.testing.assert_close(cuda_out.features[cuda_order].cpu(), cpu_out.features[cpu_order], rtol=1e-4, atol=1e-5)

    cotangent = torch.randn(cpu_out.features.shape, generator=torch.Generator().manual_seed(1))
    cpu_grads = torch.autograd.grad((cpu_out.features[cpu_order] * cotangent).sum(), [cpu_in, *cpu_layers.parameters()])
    cuda_grads = torch.autograd.grad(
        (cuda_out.features[cuda_order] * cotangent.cuda()).sum(), [cuda_in, *cuda_layers.parameters()]
    )
    for name, cuda_grad, cpu_grad in zip(
        ["input", *dict(cpu_layers.named_parameters())], cuda_grads, cpu_grads, strict=True
    ):
        torch.testing.assert_close(cuda_grad.cpu(), cpu_grad, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.gpu
@pytest.mark.usefixtures("one_autotune_candidate")
@pytest.mark.parametrize("name", ["lion", "second"])
def test_backbone_checkpoint_gives_the_same_outputs_on_both_backends(name, tmp_path):
    backend("spconv_triton.pytorch")
    backend("spconv.pytorch")
    from lrnn.pointcloud.backbone import LION3DBackbone
    from lrnn.pointcloud.second_backbone import SECONDBackbone
    from pointcloud_testing import SMALL_LION

    torch.manual_seed(0)
    checkpoint, batch_path = tmp_path / f"{name}.pt", tmp_path / "batch.pt"
    if name == "lion":
        LION3DBackbone(SMALL_LION, 4, LION_GRID).save_pretrained(checkpoint)
        torch.save(random_voxel_batch([150, 90], LION_GRID, 4), batch_path)
    else:
        init_args = {"model_cfg": SECOND_CFG, "input_channels": 4, "grid_size": list(SECOND_GRID)}
        second = SECONDBackbone(**init_args)
        for module in second.modules():  # batch-norm statistics and affine parameters away from the identity
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                torch.nn.init.uniform_(module.weight, 0.5, 1.5)
                torch.nn.init.normal_(module.bias, 0.0, 0.1)
        torch.save({"init_args": init_args, "state_dict": second.state_dict()}, checkpoint)
        torch.save(random_voxel_batch([1200, 800], SECOND_GRID, 4), batch_path)

    cpu_path = tmp_path / "cpu.pt"
    script = (
        "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[1]); "
        "from test_sparse_backends import encode; torch.save(encode(*sys.argv[2:5], 'cpu'), sys.argv[5])"
    )
    arguments = [str(Path(__file__).parent), name, str(checkpoint), str(batch_path), str(cpu_path)]
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cpu_indices, cpu_features = torch.load(cpu_path, weights_only=True)
    cuda_indices, cuda_features = encode(name, str(checkpoint), str(batch_path), "cuda")
    assert torch.equal(cuda_indices, cpu_indices)
    torch.testing.assert_close(cuda_features, cpu_features, rtol=1e-4, atol=1e-4)
