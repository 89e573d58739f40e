"""Benchmark ``selective_scan`` on CUDA: the fused Triton kernels and the composite face against the memory floor.

Shapes are those of the issue: about a million tokens of ``D = 768`` channels, at Vim-S's sequence length
(197 tokens, N = 16), LION's group length (4096 voxels, N = 16) and VMamba's four routes (G = 4, N = 1), in
bfloat16. The floor is the fewest bytes over the copy bandwidth measured in the same run: forward reads
``u, dt, z, B, C`` and writes ``y``; backward reads ``u, dt, z, dy, B, C`` and writes ``du, ddt, dz, dB, dC``.
Beside it, the floor of the kernels' special functions: the exponentials, logarithms and reciprocals they
evaluate (``special_functions``) over the ``tl.exp2`` rate measured in the same run (``special_function_rate.py``).
The composite face materialises ``[B, T, D, N]`` float32 gates and is skipped where that does not fit.

Each forward+backward row also gives the memory it takes above its inputs (GB), the checkpoints of the fused
backward included.

    lrnn bench selective_scan
"""

import argparse
from functools import partial
from pathlib import Path

import torch

from .scan import (
    add_config_argument,
    config_entries,
    copy_bandwidth,
    environment,
    for_direction,
    forced_face,
    kernel_times,
    median_ms,
    write_report,
)
from .special_function_rate import exp2_rate

SHAPES = {  # name: (B, T, D, G, N)
    "vim_s": (5120, 197, 768, 1, 16),
    "lion": (256, 4096, 768, 1, 16),
    "vmamba_routes": (320, 3136, 768, 4, 1),
}


def inputs(batch, steps, channels, groups, state_size, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, device=device, generator=gen)  # noqa: E731
    return {
        "u": rand(batch, steps, channels).to(dtype),
        "dt": (rand(batch, steps, channels) - 3).to(dtype),
        "A": -torch.exp(0.5 * rand(channels, state_size)),
        "B": rand(batch, steps, groups, state_size).to(dtype),
        "C": rand(batch, steps, groups, state_size).to(dtype),
        "D": rand(channels),
        "z": rand(batch, steps, channels).to(dtype),
        "dt_bias": rand(channels),
    }


def floor_bytes(batch, steps, channels, groups, state_size, size) -> dict[str, int]:
    tokens = batch * steps
    fwd = tokens * channels * size * 4 + 2 * tokens * groups * state_size * size
    bwd = tokens * channels * size * 7 + 4 * tokens * groups * state_size * size
    return {"fwd": fwd, "fwd+bwd": fwd + bwd}


def special_functions(batch, steps, channels, groups, state_size) -> dict[str, int]:
    """Special-function evaluations of the fused kernels with ``z`` and ``dt_softplus``: the forward takes one
    exponential a state and step (``exp(dt A)``) and four a channel and step (softplus's exponential and logarithm,
    the gate's exponential and reciprocal); the backward replays each tile (the decays and softplus again) and
    walks it back (the decays, softplus, the gate and softplus's derivative, a sigmoid)."""
    states = batch * steps * channels * state_size
    channel_steps = batch * steps * channels
    fwd = states + 4 * channel_steps
    bwd = (states + 2 * channel_steps) + (states + 6 * channel_steps)
    return {"fwd": fwd, "fwd+bwd": fwd + bwd}


def memory_above_held_gb(fn) -> float:
    """GB allocated at the peak of one call of ``fn``, above what was held before it."""
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - held) / 1e9


def time_face(backend: str, x: dict) -> tuple[dict[str, float], float | None]:
    """Forward and forward+backward (ms) of ``selective_scan`` with ``LRNN_SCAN_BACKEND=backend``, and the memory
    (GB) one forward+backward takes above its inputs; nothing where that does not fit."""
    from lrnn.core.scan import selective_scan

    leaves = {k: v.detach().requires_grad_() for k, v in x.items()}
    dy = torch.randn_like(x["u"])

    def fwd_bwd():
        y, _ = selective_scan(**leaves, dt_softplus=True)
        torch.autograd.grad(y, list(leaves.values()), dy)

    try:
        with forced_face("LRNN_SCAN_BACKEND", backend):
            with torch.no_grad():
                fwd = median_ms(lambda: selective_scan(**x, dt_softplus=True))
            return {"fwd": fwd, "fwd+bwd": median_ms(fwd_bwd)}, memory_above_held_gb(fwd_bwd)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {}, None


SWEEP_SHAPES = {"lion_b32": (32, 4096, 768, 1, 16), "vmamba_routes_b40": (40, 3136, 768, 4, 1)}
SWEEP_CONFIGS = [  # (BD, BT, num_warps, PREFETCH); PREFETCH None: each direction's default
    (32, 32, 1, None), (32, 32, 1, False), (32, 32, 2, None), (32, 32, 4, None), (16, 32, 1, None),
    (16, 32, 2, None), (8, 32, 1, None), (4, 32, 1, None), (32, 16, 1, None), (32, 64, 1, None), (16, 64, 1, None),
]  # fmt: skip


def sweep(device: torch.device) -> list[dict]:
    """Kernel-only forward and backward times (ms) of the fused face per tile configuration, bfloat16."""
    from lrnn.core.scan.selective.triton import launch_config, selective_scan_triton_bwd, selective_scan_triton_fwd

    rows = []
    for name, shape in SWEEP_SHAPES.items():
        x = inputs(*shape, torch.bfloat16, device)
        args = (x["u"], x["dt"], x["A"], x["B"], x["C"], x["D"], x["z"], x["dt_bias"], True)
        dy = torch.randn_like(x["u"])
        for block_d, block_t, warps, prefetch in SWEEP_CONFIGS:
            tile = {"BD": block_d, "BT": block_t, "num_warps": warps} | (
                {} if prefetch is None else {"PREFETCH": prefetch}
            )
            forward = {**launch_config(*shape[2:], "fwd", True), **tile}
            backward = {**launch_config(*shape[2:], "bwd"), **tile}
            row = {"shape": name, "B_T_D_G_N": shape, **tile}
            row |= {"fwd_PREFETCH": forward["PREFETCH"], "bwd_PREFETCH": backward["PREFETCH"]}
            try:
                fwd = partial(selective_scan_triton_fwd, *args, None, False, True, forward)
                row["fwd_ms"] = median_ms(fwd)
                grads = partial(selective_scan_triton_bwd, *args, fwd()[2], dy, None, False, backward)
                row["bwd_ms"] = median_ms(grads)
            except Exception as error:  # noqa: BLE001 - a configuration that does not compile is reported
                row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
            rows.append(row)
            print(row)
        del x
        torch.cuda.empty_cache()
    return rows


def override_config(entries: dict[str, int]) -> None:
    """Run the fused kernels with ``entries`` over ``launch_config``'s, per ``for_direction`` (``BD``, ``PREFETCH``,
    ``num_warps``; the two directions must agree on ``BT``)."""
    from lrnn.core.scan.selective import triton as face

    default = face.launch_config

    def configured(
        channels: int, groups: int, state_size: int, direction: str = "fwd", saves_states: bool = False
    ) -> dict:
        return {**default(channels, groups, state_size, direction, saves_states), **for_direction(entries, direction)}

    face.launch_config = configured


def profile_fused(x: dict) -> list[dict]:
    """Per-kernel times of one fused forward+backward; prints the ten longest."""
    from lrnn.core.scan import selective_scan

    leaves = {k: v.detach().requires_grad_() for k, v in x.items()}
    dy = torch.randn_like(x["u"])
    rows = kernel_times(
        lambda: torch.autograd.grad(selective_scan(**leaves, dt_softplus=True)[0], list(leaves.values()), dy)
    )
    for row in rows[:10]:
        print(f"  {row['ms']:8.3f}  x{row['calls']:<4g} {row['kernel'][:100]}")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench selective_scan", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    parser.add_argument("--sweep", action="store_true", help="only time the fused kernels' tile configurations")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES), help="shapes to time")
    parser.add_argument(
        "--profile",
        nargs="*",
        choices=list(SHAPES),
        default=None,
        help="also list each kernel's time at these of the timed shapes (lion when none is named)",
    )
    add_config_argument(parser, "PREFETCH=1 (both directions) or bwd.BD=16 (one)")
    parser.add_argument("--no-composite", action="store_true", help="time the fused face only")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("lrnn bench selective_scan needs a CUDA GPU")
    entries = config_entries(args.config)
    override_config(entries)

    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    report = {**environment(device), "config": entries, "results": [], "copy_bandwidth_TBps": bandwidth / 1e12}
    print(f"{report['gpu']}: device-to-device copy {bandwidth / 1e12:.2f} TB/s")
    if args.sweep:
        report["sweep"] = sweep(device)
        write_report(report, "selective_scan_sweep", args.out)
        return report
    exp_rate = report["exp2_per_s"] = exp2_rate(device)
    print(f"tl.exp2: {exp_rate / 1e12:.2f} T/s")
    columns = f"{'shape':>14} {'face':>9} {'mode':>8} {'ms':>8} {'floor':>8} {'%floor':>7} {'exp floor':>9} {'%exp':>6}"
    print(f"{columns} {'GB':>6}")
    profiled = set(args.profile or ["lion"]) if args.profile is not None else set()
    for name in args.shapes:
        shape = SHAPES[name]
        x = inputs(*shape, torch.bfloat16, device)
        floors, evaluations = floor_bytes(*shape, 2), special_functions(*shape)
        for backend, face in (("triton", "fused"), ("torch", "composite"))[: 1 if args.no_composite else 2]:
            times, memory = time_face(backend, x)
            for mode, ms in times.items():
                floor_ms = floors[mode] / bandwidth * 1e3
                exp_floor_ms = evaluations[mode] / exp_rate * 1e3
                row = dict(shape=name, B_T_D_G_N=shape, face=face, mode=mode, ms=ms)
                row.update(floor_ms=floor_ms, exp_floor_ms=exp_floor_ms)
                if mode == "fwd+bwd" and memory is not None:
                    row["memory_GB"] = memory
                report["results"].append(row)
                print(
                    f"{name:>14} {face:>9} {mode:>8} {ms:8.3f} {floor_ms:8.3f} {100 * floor_ms / ms:6.1f}% "
                    f"{exp_floor_ms:9.3f} {100 * exp_floor_ms / ms:5.1f}% {row.get('memory_GB', float('nan')):6.2f}"
                )
        if name in profiled:
            print(f"{name}: the fused forward+backward's kernels")
            report.setdefault("profile", {})[name] = profile_fused(x)
        del x
        torch.cuda.empty_cache()
    write_report(report, "selective_scan", args.out)
    return report


if __name__ == "__main__":
    main()
