"""Speed and peak memory of the LION 3D backbone per operator, beside SECOND's sparse CNN, at Waymo scale on CUDA.

Input: one frame of ``--voxels`` (150,000) occupied voxels on LION's Waymo grid (``lion_*_waymo_*.yaml``): voxels
0.32 x 0.32 x 0.1875 m over x, y in [-75.52, 75.52] m and z in [-2, 4] m, 472 x 472 x 32 cells (the issue's example,
+-74.88 m, gives 468 cells; LION's Waymo configs use +-75.52). The voxels lie on the surfaces of a synthetic LiDAR scene
(``waymo_like_voxels``), so that they cluster as in real scans instead of scattering uniformly over the grid.

* LION: the backbone of the recipe ``configs/pointcloud/lion_<operator>_kitti.yaml`` (mamba's recipe with the
  mixer's defaults for ``mlstm`` and ``gla``, which have none) at ``FEATURE_DIM`` = each of ``--dims``: four stages
  of depth 2, windows 13 x 13, groups 4096 / 2048 / 1024 / 512, output layer 256, voxel generation (DIFF_SCALE 0.2),
  as LION's Waymo configs; KITTI's grid also has 32 z cells. Its input is ``[N, dim]`` (LION's VFE outputs dim).
  ``--checkpoint`` turns on activation checkpointing in every operator block, as LION trains.
* SECOND: ``SECONDBackbone`` (OpenPCDet's ``VoxelBackBone8x``, 16/32/64/64 channels, 128 out) on the same voxels
  with Waymo's 5 point features (x, y, z, intensity, elongation through a mean VFE); it has no dim.

Forward runs in eval mode under ``torch.no_grad``; forward+backward in train mode, back from the mean square of
the encoded features, parameter gradients set to None before each call. Times are medians of CUDA-event-timed runs
after warm-up (``median_ms``: about 200 ms of runs, at least one); peak memory is ``torch.cuda.max_memory_allocated``
over one more call (weights, input and gradients included); ``wall_s`` is a row's whole time, kernel compilation
and autotuning included. ``--dtypes``: ``fp16`` and ``bf16`` run under ``torch.autocast``, ``fp32`` without;
float32 matmuls run without TF32 unless ``--tf32``. Sparse convolution is spconv-triton's, which (like spconv, and
OpenPCDet's float16 AMP) convolves in float16 under any autocast; under ``bf16`` its float16 outputs then meet
bfloat16 tensors in ops that autocast refuses to mix (``torch.cat``), so LION's ``bf16`` rows need the sparse-conv
adapter to return autocast's dtype. Only spconv's training path follows autocast: in the forward rows (eval mode) the
adapter convolves in float32 (``lrnn.pointcloud.sparse_conv``; spconv-triton failed to compile SECOND's float16
features against float32 weights there). A row that fails records its error and the run goes on; the report is written
after every row, and ``--resume REPORT`` measures only the rows that REPORT lacks (measured or out of memory).
Each row records the face ``chunk_gla`` ran on (``chunk_gla_face``: ``triton``, the CUDA default, or ``chunked`` under
``LRNN_SCAN_BACKEND=torch``; rows from before the Triton face became the default ran ``chunked``), so one report can
hold both.
``--spconv-configs N`` lets spconv-triton autotune over its first N candidate tiles only (a fresh machine spends
over ten minutes autotuning SECOND's layers in full; ``lrnn.pointcloud.sparse_conv``); rows record the setting.

    lrnn bench lion_backbone_speed
    lrnn bench lion_backbone_speed --operators mamba --dims 64 --voxels 50000 --dtypes fp16 --no-second
    LRNN_SCAN_BACKEND=torch lrnn bench lion_backbone_speed --operators gla --no-second --resume REPORT
"""

import argparse
import contextlib
import importlib.resources
import json
import math
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from lrnn.core.scan.backend import scan_backend

from .profiling import print_profile, profile_call
from .scan import environment, median_ms, write_report

OPERATORS = ["mamba", "retnet", "rwkv6", "mlstm", "gla"]
RECIPES = {"mamba", "retnet", "rwkv6"}  # operators with a configs/pointcloud/lion_<operator>_kitti.yaml
DIMS = [64, 128]
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
VOXEL_SIZE = (0.32, 0.32, 0.1875)
POINT_CLOUD_RANGE = (-75.52, -75.52, -2.0, 75.52, 75.52, 4.0)
GRID = (472, 472, 32)  # (X, Y, Z) cells
POINT_FEATURES = 5  # Waymo: x, y, z, intensity, elongation
DENSE_RANGE = 20.0  # metres: inside it every surface cell is equally likely to be hit, beyond it they thin as 1/r^2


def _box_surface(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Cells ``[M, 3]`` (x, y, z) on the sides and top of the box of cells ``low <= c < high`` (x, y, z)."""
    axes = [torch.arange(int(lo), int(hi)) for lo, hi in zip(low, high, strict=True)]
    cells = torch.cartesian_prod(*axes)
    on_side = (cells[:, :2] == low[:2]).any(1) | (cells[:, :2] == high[:2] - 1).any(1)
    return cells[on_side | (cells[:, 2] == high[2] - 1)]


def waymo_like_voxels(count: int, seed: int = 0) -> torch.Tensor:
    """``voxel_coords [count, 4]`` int32 (batch 0, z, y, x), sorted, on ``GRID``: a synthetic LiDAR frame.

    Candidate cells are the surfaces of a scene around a sensor at the origin: the ground (one cell per column, on a
    surface rolling by +-0.3 m around z = 0), and the sides and tops of axis-aligned boxes centred 5-70 m from the
    sensor: 150 cars (4.5 x 2 x 1.6 m) and 60 buildings (5-30 m by 4-12 m, 3-8 m high, cut at the grid top).
    ``count`` cells are drawn without replacement, each with weight ``min(1, (DENSE_RANGE / r)^2)`` for its
    horizontal range ``r``, as a spinning LiDAR's returns thin out with range. Raises ``ValueError`` if the scene
    has fewer cells."""
    generator = torch.Generator().manual_seed(seed)
    size = torch.tensor(VOXEL_SIZE)
    low = torch.tensor(POINT_CLOUD_RANGE[:3])
    grid = torch.tensor(GRID)
    ys, xs = torch.meshgrid(torch.arange(GRID[1]), torch.arange(GRID[0]), indexing="ij")
    height = 0.3 * torch.sin(xs * size[0] / 15.0) * torch.cos(ys * size[1] / 25.0)
    ground_z = ((height - low[2]) / size[2]).long()
    cells = [torch.stack([xs.flatten(), ys.flatten(), ground_z.flatten()], dim=1)]
    ground_top = int(ground_z.max()) + 1

    def boxes(number: int, smallest: tuple, largest: tuple) -> None:
        extent = torch.tensor(smallest) + torch.rand(number, 3, generator=generator) * torch.tensor(largest)
        extent = (extent / size).ceil().long()
        angle = torch.rand(number, generator=generator) * 2 * math.pi
        radius = 5.0 + torch.rand(number, generator=generator) * 65.0
        centre = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
        corner = ((centre - low[:2]) / size[:2]).long() - extent[:, :2] // 2
        for c, e in zip(corner, extent, strict=True):
            box_low = torch.cat([c, torch.tensor([ground_top])]).clamp(min=0)
            box_high = torch.minimum(torch.cat([c + e[:2], torch.tensor([ground_top + e[2]])]), grid)
            if (box_high > box_low).all():
                cells.append(_box_surface(box_low, box_high))

    boxes(150, (4.5, 2.0, 1.6), (0.0, 0.0, 0.0))
    boxes(60, (5.0, 4.0, 3.0), (25.0, 8.0, 5.0))
    cells = torch.cat(cells)
    keys = torch.unique((cells[:, 2] * GRID[1] + cells[:, 1]) * GRID[0] + cells[:, 0])
    if count > len(keys):
        raise ValueError(f"--voxels {count} exceeds the {len(keys)} surface cells of the synthetic scene")
    z, y, x = keys // (GRID[0] * GRID[1]), keys // GRID[0] % GRID[1], keys % GRID[0]
    r = torch.hypot((x + 0.5) * size[0] + low[0], (y + 0.5) * size[1] + low[1])
    weight = (DENSE_RANGE / r.clamp(min=1.0)).square().clamp(max=1.0)
    chosen = torch.multinomial(weight, count, replacement=False, generator=generator).sort().values
    return torch.stack([torch.zeros_like(z), z, y, x], dim=1)[chosen].int()


def lion_config(operator: str, dim: int, checkpoint: bool) -> dict:
    """The LION backbone's ``model_cfg`` from the operator's KITTI recipe (mamba's for operators without one)."""
    import yaml

    recipe = f"lion_{operator if operator in RECIPES else 'mamba'}_kitti.yaml"
    text = (importlib.resources.files("lrnn.configs") / "pointcloud" / recipe).read_text()
    model_cfg = yaml.safe_load(text)["model"]["init_args"]["model_cfg"]
    if operator not in RECIPES:
        model_cfg["OPERATOR"] = {"NAME": operator, "CFG": {}}
    return {**model_cfg, "FEATURE_DIM": dim, "USE_CHECKPOINT": checkpoint}


def measure(model: torch.nn.Module, batch: dict, dtype: torch.dtype) -> dict:
    """Forward (eval, no grad) and forward+backward (train) of ``model`` on ``batch``: median ms and peak MiB."""

    def forward() -> dict:
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            return model(dict(batch))

    def forward_backward() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            encoded = model(dict(batch))["encoded_spconv_tensor"]
        encoded.features.float().square().mean().backward()

    row = {}
    for mode, fn, train in (("fwd", forward, False), ("fwd_bwd", forward_backward, True)):
        model.train(train)
        row[f"{mode}_ms"] = median_ms(fn)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        row[f"{mode}_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    model.eval()
    row["output_voxels"] = len(forward()["encoded_spconv_tensor"].features)
    model.zero_grad(set_to_none=True)
    return row


def profile_forward(model: torch.nn.Module, batch: dict, dtype: torch.dtype) -> dict:
    """One eval forward under torch's profiler (``profiling.profile_call``): where the forward's time goes."""
    model.eval()

    def forward():
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            model(dict(batch))

    return profile_call(forward)


def cases(args: argparse.Namespace) -> list[tuple[str, str, int | None]]:
    """``(backbone, operator, dim)`` in run order: LION per operator and dim, then SECOND."""
    rows = [("lion", operator, dim) for operator in args.operators for dim in args.dims]
    return rows + ([("second", "spconv", None)] if args.second else [])


def build(backbone: str, operator: str, dim: int | None, checkpoint: bool, device: torch.device) -> tuple:
    """The backbone on ``device`` and its input channels."""
    from lrnn.pointcloud.backbone import LION3DBackbone
    from lrnn.pointcloud.second_backbone import SECONDBackbone

    torch.manual_seed(0)
    if backbone == "lion":
        model = LION3DBackbone(lion_config(operator, dim, checkpoint), dim, GRID, VOXEL_SIZE, POINT_CLOUD_RANGE)
        return model.to(device), dim
    return SECONDBackbone({}, POINT_FEATURES, GRID, VOXEL_SIZE, POINT_CLOUD_RANGE).to(device), POINT_FEATURES


def resumed_rows(path: Path, report: dict) -> list[dict]:
    """The rows of the report at ``path`` that need no new run (measured, or out of memory); refuses a report
    taken on another GPU or input."""
    previous = json.loads(path.read_text())
    for key in ("gpu", "voxels", "grid_xyz", "seed", "checkpoint", "tf32"):
        if previous.get(key) != report[key]:
            raise SystemExit(f"--resume {path}: its {key} is {previous.get(key)!r}, this run's is {report[key]!r}")
    return [row for row in previous["results"] if row.get("error", "out of memory") == "out of memory"]


def chunk_gla_face() -> str:
    """The face ``chunk_gla`` runs on CUDA in this run: ``triton``, ``chunked`` or ``reference``."""
    return {"torch": "chunked"}.get(face := scan_backend(torch.device("cuda")), face)


def row_key(row: dict) -> tuple:
    """What a row measured."""
    return row["backbone"], row["operator"], row["dim"], row["dtype"], row["chunk_gla_face"]


def print_row(row: dict) -> None:
    shown = row.get("error") or (
        f"{row['fwd_ms']:9.2f} {row['fwd_bwd_ms']:9.2f} {row['fwd_peak_mib']:9.0f} {row['fwd_bwd_peak_mib']:9.0f} "
        f"{row['output_voxels']:8d} {row['wall_s']:6.0f}"
    )
    case = f"{row['backbone']:>6} {row['operator']:>7} {row['dim'] or '-':>4} {row['dtype']:>5}"
    print(f"{case} {row['chunk_gla_face']:>9} {shown}", flush=True)


def run_rows(args: argparse.Namespace, coords: torch.Tensor, report: dict, save: Callable[[], Path]) -> bool:
    """Measure every case and dtype not in ``report["results"]`` yet, appending rows and calling ``save()`` after
    each (a run killed later keeps them); True if a row failed other than by running out of memory."""
    face = chunk_gla_face()
    done = {row_key(row) for row in report["results"]}
    failed = False
    for backbone, operator, dim in cases(args):
        dtypes = [name for name in args.dtypes if (backbone, operator, dim, name, face) not in done]
        if not dtypes:
            continue
        model, channels = build(backbone, operator, dim, args.checkpoint, coords.device)
        generator = torch.Generator(device=coords.device).manual_seed(args.seed)
        features = torch.randn(len(coords), channels, device=coords.device, generator=generator)
        batch = {"voxel_features": features, "voxel_coords": coords, "batch_size": 1}
        params = sum(p.numel() for p in model.parameters())
        for dtype_name in dtypes:
            row = {"backbone": backbone, "operator": operator, "dim": dim, "dtype": dtype_name, "chunk_gla_face": face}
            row.update(params=params, spconv_configs="all" if args.spconv_configs is None else args.spconv_configs)
            start = time.perf_counter()
            try:
                row.update(measure(model, batch, DTYPES[dtype_name]))
                row["wall_s"] = time.perf_counter() - start  # compiling and autotuning kernels included
                if args.profile:
                    row["profile"] = profile_forward(model, batch, DTYPES[dtype_name])
            except torch.OutOfMemoryError:
                row["error"] = "out of memory"
            except Exception as error:  # noqa: BLE001  (one failing row must not lose the others' numbers)
                traceback.print_exc()
                row["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                failed = True
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            report["results"].append(row)
            print_row(row)
            if "profile" in row:
                print_profile(row["profile"])
            save()
        del model, batch, features
        torch.cuda.empty_cache()
    return failed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench lion_backbone_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--operators", nargs="*", default=OPERATORS, choices=OPERATORS, help="LION operators")
    parser.add_argument("--dims", nargs="*", type=int, default=DIMS, help="LION feature dims")
    parser.add_argument("--voxels", type=int, default=150_000, help="occupied voxels in the frame")
    parser.add_argument("--dtypes", nargs="+", default=["fp16", "fp32"], choices=list(DTYPES))
    parser.add_argument("--second", action=argparse.BooleanOptionalAction, default=True, help="the SECOND peer")
    parser.add_argument("--checkpoint", action="store_true", help="activation checkpointing in LION's blocks")
    parser.add_argument("--tf32", action="store_true", help="let float32 matmuls use TF32")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic scene and the features")
    parser.add_argument("--profile", action="store_true", help="also profile one forward of each measured row")
    parser.add_argument(
        "--spconv-configs", type=int, default=None, help="autotune spconv-triton over its first N tiles (default all)"
    )
    parser.add_argument("--resume", type=Path, default=None, help="a report of this benchmark: keep its rows")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit(
            "lrnn bench lion_backbone_speed needs a CUDA GPU (it times the backbones on CUDA with spconv-triton; "
            "run it through benchmarks/gpu_run.sh on the GPU machine)"
        )
    import spconv_triton
    from lrnn.pointcloud.sparse_conv import spconv_triton_autotune_limit

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    device = torch.device("cuda")
    report = {
        **environment(device),
        "spconv_triton": spconv_triton.__version__,
        "voxels": args.voxels,
        "grid_xyz": list(GRID),
        "voxel_size": list(VOXEL_SIZE),
        "point_cloud_range": list(POINT_CLOUD_RANGE),
        "seed": args.seed,
        "checkpoint": args.checkpoint,
        "tf32": args.tf32,
        "results": [],
    }
    if args.resume:
        report["results"] = resumed_rows(args.resume, report)
    coords = waymo_like_voxels(args.voxels, args.seed).to(device)
    print(f"{report['gpu']}: {args.voxels} voxels on a {GRID[0]} x {GRID[1]} x {GRID[2]} grid")
    print(
        f"{'model':>6} {'op':>7} {'dim':>4} {'dtype':>5} {'chunk_gla':>9} {'fwd ms':>9} {'f+b ms':>9} {'fwd MiB':>9} "
        f"{'f+b MiB':>9} {'out vox':>8} {'wall s':>6}"
    )

    def save() -> Path:
        return write_report(report, "lion_backbone_speed", args.out)

    failed = False
    try:
        limit = (
            contextlib.nullcontext()
            if args.spconv_configs is None
            else spconv_triton_autotune_limit(args.spconv_configs)
        )
        with limit:
            failed = run_rows(args, coords, report, save)
    except KeyboardInterrupt:
        report["interrupted"] = True
        print("interrupted: the rows measured so far are kept (finish them with --resume)")
    save()
    if failed:
        raise SystemExit("some rows failed; their errors are in the report")
    return report


if __name__ == "__main__":
    main()
