"""The one adapter for sparse 3D convolution: spconv's API, with the backend chosen by the machine.

* With a CUDA device: ``spconv_triton.pytorch`` (pure Triton, a drop-in for spconv 2.x with the same checkpoint
  layout). It is not a dependency of ``lrnn``: install it with ``pip install spconv-triton``.
* Without one: ``spconv.pytorch`` from ``spconv==2.3.8`` (``pip install lrnn[pointcloud]``), whose CPU path has two
  known faults, handled here:

  - its backward asks for the current CUDA stream; ``spconv.pytorch.ops.get_current_stream`` is replaced, once at
    import, by one returning stream 0 (only on a machine without a GPU, where no CUDA stream exists);
  - its CPU convolution is wrong (errors up to ~0.4, varying run to run) with more than one torch thread and exact
    with one. The convolutions below raise ``RuntimeError`` on CPU input while ``torch.get_num_threads() > 1``
    rather than change the process-wide thread count behind the caller's back; call ``torch.set_num_threads(1)``
    first (the backward pass needs it too).

Under autocast spconv follows it only where its autograd function runs, in training on CUDA (in float16, whatever
the autocast dtype): its inference path, and its CPU path in both modes, fail on features of a dtype other than the
weights' (seen on the H100 with spconv-triton: a compile error for float16 features against float32 weights, as
soon as a BatchNorm passes a float16 convolution output on, as in SECOND). There the convolutions below run outside
autocast on features in the weights' dtype. Either way their outputs come back in the autocast dtype.

spconv-triton autotunes each of its kernels for every new (kernel volume, channel counts, dtypes) key: over 30
candidate tiles compiled and timed, more than a minute for the first layer on a fresh H100, so a network with many
distinct layers spends minutes in its first forward and backward (SECOND's first run on the H100 had not finished
after six). Triton keeps the winners on
disk (``TRITON_CACHE_DIR``), so it happens once per machine; ``spconv_triton_autotune_limit`` cuts the candidates
where the first run's time matters more than the last few percent (tests: the tiles change the order of the sums,
not the results).

Tensors: ``SparseConvTensor(features [N, C], indices [N, 4] int32 (batch, z, y, x), spatial_shape [Z, Y, X],
batch_size)``; conv weights are ``[C_out, k_z, k_y, k_x, C_in]``.
"""

import contextlib
import importlib
from collections.abc import Iterator

import torch

if torch.cuda.is_available():
    try:
        import spconv_triton.pytorch as spconv
    except ImportError as error:
        raise ImportError(
            "lrnn.pointcloud runs sparse convolution on the GPU through spconv-triton, which is not installed: "
            "pip install spconv-triton"
        ) from error
else:
    try:
        import spconv.pytorch as spconv
        import spconv.pytorch.ops as spconv_ops
    except ImportError as error:
        raise ImportError(
            "lrnn.pointcloud runs sparse convolution on the CPU through spconv 2.3.8: pip install 'lrnn[pointcloud]'"
        ) from error
    spconv_ops.get_current_stream = lambda: 0

SparseConvTensor = spconv.SparseConvTensor
SparseSequential = spconv.SparseSequential


def _check_cpu_threads(x: SparseConvTensor) -> None:
    if x.features.device.type == "cpu" and torch.get_num_threads() > 1:
        raise RuntimeError(
            f"spconv's CPU convolution is wrong with more than one torch thread (now {torch.get_num_threads()}): "
            "call torch.set_num_threads(1) before running sparse convolutions on the CPU"
        )


def _in_autocast_dtype(x: SparseConvTensor) -> SparseConvTensor:
    """``x`` with features in the autocast dtype when autocast is on: spconv (and spconv-triton) compute in
    float16 under any autocast, so a bfloat16 region would otherwise receive float16 features."""
    device = x.features.device.type
    if not torch.is_autocast_enabled(device):
        return x
    return x.replace_feature(x.features.to(torch.get_autocast_dtype(device)))


def _convolve(conv, forward, x: SparseConvTensor) -> SparseConvTensor:
    """``forward(x)`` (spconv's) for the convolution module ``conv``, in a dtype spconv can run under autocast
    (see the module docstring), returning features in the autocast dtype."""
    _check_cpu_threads(x)
    device = x.features.device.type
    if not torch.is_autocast_enabled(device) or (device == "cuda" and conv.training):
        out = forward(x)
    else:
        with torch.autocast(device, enabled=False):
            out = forward(x.replace_feature(x.features.to(conv.weight.dtype)))
    return _in_autocast_dtype(out)


class SubMConv3d(spconv.SubMConv3d):
    """Submanifold 3D convolution: outputs only at the input's active sites (spconv's ``SubMConv3d``)."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        return _convolve(self, super().forward, x)


class SparseConv3d(spconv.SparseConv3d):
    """Regular sparse 3D convolution: outputs at every site whose receptive field holds an active input."""

    def forward(self, x: SparseConvTensor) -> SparseConvTensor:
        return _convolve(self, super().forward, x)


def to_dense(x: SparseConvTensor) -> torch.Tensor:
    """The dense grid ``[B, C, Z, Y, X]`` of a sparse tensor, zeros at inactive sites (differentiable).

    Written here rather than ``SparseConvTensor.dense``, whose list indexing torch deprecates."""
    grid = x.features.new_zeros(x.batch_size, *x.spatial_shape, x.features.shape[1])
    grid = grid.index_put(tuple(x.indices.long().unbind(1)), x.features)
    return grid.permute(0, 4, 1, 2, 3)


@contextlib.contextmanager
def spconv_triton_autotune_limit(max_configs: int) -> Iterator[int]:
    """Within the block, every autotuned kernel of spconv-triton tries only its first ``max_configs`` candidate
    tiles (module docstring); yields how many kernels were limited, and restores the full lists on exit. A no-op
    (yielding 0) without spconv-triton, as on the CPU backend."""
    from triton.runtime.autotuner import Autotuner

    if max_configs < 1:
        raise ValueError(f"max_configs must be at least 1, got {max_configs}")
    try:
        modules = [
            importlib.import_module(f"spconv_triton.pytorch._impl.{name}") for name in ("gemm", "pair_kernels", "pool")
        ]
    except ImportError:
        yield 0
        return
    tuners = {id(t): t for module in modules for t in vars(module).values() if isinstance(t, Autotuner)}.values()
    saved = [(tuner, tuner.configs) for tuner in tuners]
    for tuner, configs in saved:
        tuner.configs = configs[:max_configs]
    try:
        yield len(saved)
    finally:
        for tuner, configs in saved:
            tuner.configs = configs
