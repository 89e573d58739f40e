"""Benchmark ``window_gather`` and ``window_scatter`` on CUDA: the Triton kernels against torch indexing, in one run.

LION's first stage at Waymo scale: 150,000 voxels in four samples on a 32 x 468 x 468 grid, windows of
13 x 13 x 32, groups of 4096 slots (each sample's last group padded with copies), ``C = 128``, bfloat16 and
float32. Both faces run through the public functions (``LRNN_KERNEL_BACKEND=triton|torch``), forward and
forward+backward. The floor is the fewest bytes over the copy bandwidth measured in the same run: the gather reads
the ``N`` voxel rows and writes ``S`` slot rows, its backward reads ``S`` and writes ``N``; the scatter reads the
``N`` real slot rows and writes ``N`` voxel rows, its backward reads ``N`` and writes ``S``; each pass also reads its
index once. The Triton backward's stable sort of the index (counted in its time, not in the floor) is also timed
alone. Results go to ``benchmarks/results/window_gather_<gpu>.json``.

    lrnn bench window_gather
"""

import argparse
from pathlib import Path

import torch

from .scan import copy_bandwidth, environment, forced_face, kernel_times, median_ms, write_report

COUNTS = (39000, 37000, 38000, 36000)  # voxels per sample, 150,000 in all
SPATIAL_SHAPE, WINDOW, GROUP_SIZE, CHANNELS = (32, 468, 468), (13, 13, 32), 4096, 128
DTYPES = (torch.bfloat16, torch.float32)
MODES = ("fwd", "fwd+bwd")


def lion_groups(device: torch.device):
    """``WindowGroups`` of ``COUNTS`` voxels at random unique places of the grid, in LION's x order."""
    from lrnn.pointcloud.window_groups import group_windows

    gen = torch.Generator(device=device).manual_seed(0)
    size_z, size_y, size_x = SPATIAL_SHAPE
    rows = []
    for b, n in enumerate(COUNTS):
        flat = torch.randperm(size_z * size_y * size_x, device=device, generator=gen)[:n]
        rows.append(torch.stack([torch.full_like(flat, b), flat // (size_y * size_x), flat // size_x % size_y,
                                 flat % size_x], dim=1))  # fmt: skip
    return group_windows(torch.cat(rows).int(), len(COUNTS), SPATIAL_SHAPE, WINDOW, GROUP_SIZE, "x")


def floor_bytes(voxels: int, slots: int, size: int) -> dict[str, dict[str, int]]:
    """Fewest bytes per op and mode: feature rows of ``CHANNELS * size`` bytes, int64 indices read once a pass."""
    row = CHANNELS * size
    gather, scatter = (voxels + slots) * row + 8 * slots, 2 * voxels * row + 8 * voxels
    gather_bwd, scatter_bwd = (slots + voxels) * row + 8 * slots, (voxels + slots) * row + 8 * voxels
    return {
        "gather": {"fwd": gather, "fwd+bwd": gather + gather_bwd},
        "scatter": {"fwd": scatter, "fwd+bwd": scatter + scatter_bwd},
    }


def time_face(backend: str, op, src: torch.Tensor, index: torch.Tensor, grad: torch.Tensor) -> dict[str, float]:
    """Forward and forward+backward medians (ms) of ``op(src, index)`` with ``LRNN_KERNEL_BACKEND=backend``."""
    leaf = src.detach().requires_grad_()
    with forced_face("LRNN_KERNEL_BACKEND", backend):
        fwd = median_ms(lambda: op(src, index))
        return {"fwd": fwd, "fwd+bwd": median_ms(lambda: torch.autograd.grad(op(leaf, index), leaf, grad))}


def sort_ms(index: torch.Tensor, num_rows: int) -> float:
    """The Triton backward's preparation alone: stable sort of ``index`` and the row offsets."""
    rows = torch.arange(num_rows + 1, device=index.device)
    return median_ms(lambda: torch.searchsorted(torch.sort(index, stable=True)[0], rows))


def profile_gather(index: torch.Tensor, voxels: int) -> list[dict]:
    """The kernels of one bfloat16 ``window_gather`` forward+backward through the Triton face, printed."""
    from lrnn.kernels.window_gather import window_gather

    features = torch.randn(voxels, CHANNELS, device=index.device, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(len(index), CHANNELS, device=index.device, dtype=torch.bfloat16)
    with forced_face("LRNN_KERNEL_BACKEND", "triton"):
        rows = kernel_times(lambda: torch.autograd.grad(window_gather(features, index), features, grad))
    for row in rows:
        print(f"{row['ms']:10.3f}  x{row['calls']:<4g} {row['kernel'][:100]}")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench window_gather", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    parser.add_argument("--profile", action="store_true", help="also list the kernels of the Triton gather's fwd+bwd")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit(
            "lrnn bench window_gather needs a CUDA GPU: it times the Triton kernels against torch indexing on the "
            "device (on the CPU the kernels run only under the interpreter, too slowly to time)"
        )
    from lrnn.kernels.window_gather import window_gather, window_scatter

    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    groups = lion_groups(device)
    voxels, slots = len(groups.slot_of_voxel), len(groups.voxel_at_slot)
    report = {
        **environment(device),
        "copy_bandwidth_TBps": bandwidth / 1e12,
        "voxels": voxels,
        "slots": slots,
        "channels": CHANNELS,
        "group_size": GROUP_SIZE,
        "index_sort_ms": {
            "gather": sort_ms(groups.voxel_at_slot, voxels),
            "scatter": sort_ms(groups.slot_of_voxel, slots),
        },
        "results": [],
    }
    print(f"{report['gpu']}: device-to-device copy {bandwidth / 1e12:.2f} TB/s; {voxels} voxels in {slots} slots")
    print(f"{'op':>8} {'dtype':>9} {'face':>7} {'mode':>8} {'ms':>8} {'floor':>8} {'%floor':>7}")
    gen = torch.Generator(device=device).manual_seed(1)
    for dtype in DTYPES:
        floors = floor_bytes(voxels, slots, torch.tensor([], dtype=dtype).element_size())
        features = torch.randn(voxels, CHANNELS, device=device, generator=gen).to(dtype)
        grouped = torch.randn(slots, CHANNELS, device=device, generator=gen).to(dtype)
        cases = {
            "gather": (window_gather, features, groups.voxel_at_slot, grouped),
            "scatter": (window_scatter, grouped, groups.slot_of_voxel, features),
        }
        for name, (op, src, index, grad) in cases.items():
            for face in ("triton", "torch"):
                for mode, ms in time_face(face, op, src, index, grad).items():
                    floor_ms = floors[name][mode] / bandwidth * 1e3
                    row = {"op": name, "dtype": str(dtype).removeprefix("torch."), "face": face, "mode": mode,
                           "ms": ms, "floor_ms": floor_ms, "fraction_of_floor": floor_ms / ms}  # fmt: skip
                    report["results"].append(row)
                    print(f"{name:>8} {row['dtype']:>9} {face:>7} {mode:>8} {ms:8.3f} {floor_ms:8.3f} "
                          f"{100 * floor_ms / ms:6.1f}%")  # fmt: skip
    if args.profile:
        report["profile"] = profile_gather(groups.voxel_at_slot, voxels)
    sorts = report["index_sort_ms"]
    print(f"index sort + offsets alone: gather {sorts['gather']:.3f} ms, scatter {sorts['scatter']:.3f} ms")
    write_report(report, "window_gather", args.out)
    return report


if __name__ == "__main__":
    main()
