"""Benchmark ``newton_scan`` against the sequential loop on a PLRNN step, on the CPU and on CUDA if present.

The step is ``z' = A ⊙ z + W relu(z) + h + C x`` (float32, batch 16, 8 inputs, bounded dynamics) with its
Jacobian ``diag(A) + W diag(z > 0)`` passed to ``newton_scan``; every M in (20, 100) and T in (200, 1000) is timed
forward only (no autograd) and forward plus backward (the loss ``sum(z * w)``). CUDA times are medians of
CUDA-event-timed runs, CPU times medians of ``--repeats`` host-timed runs after one warm-up. Results go to
``benchmarks/results/newton_scan_<device>.json``.

    lrnn bench newton_scan                         # CPU, and CUDA when there is one
    lrnn bench newton_scan --scans chunked doubling
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from lrnn.benchmarks.scan import median_ms, write_report
from lrnn.core.scan.newton import newton_scan, newton_scan_reference

BATCH, INPUTS = 16, 8
WIDTHS, STEPS = (20, 100), (200, 1000)


class Plrnn:
    def __init__(self, width: int, device: torch.device):
        gen = torch.Generator().manual_seed(width)
        self.A = (0.5 + 0.4 * torch.rand(width, generator=gen)).to(device).requires_grad_()
        self.W = (0.3 * torch.randn(width, width, generator=gen) / width**0.5).to(device).requires_grad_()
        self.h = (0.2 * torch.randn(width, generator=gen)).to(device).requires_grad_()
        self.C = torch.randn(width, INPUTS, generator=gen).to(device).requires_grad_()

    def __call__(self, z, x):
        return self.A * z + torch.relu(z) @ self.W.T + self.h + x @ self.C.T

    def jacobian(self, z, x):
        return torch.diag(self.A) + self.W * (z > 0).to(z.dtype).unsqueeze(1)


def host_median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_case(width: int, steps: int, device: torch.device, scans: list[str], repeats: int) -> list[dict]:
    model = Plrnn(width, device)
    gen = torch.Generator().manual_seed(steps)
    z0 = torch.randn(BATCH, width, generator=gen).to(device).requires_grad_()
    x = torch.randn(BATCH, steps, INPUTS, generator=gen).to(device)
    weight = torch.randn(BATCH, steps, width, generator=gen).to(device)
    timer = median_ms if device.type == "cuda" else lambda fn: host_median_ms(fn, repeats)
    solvers = {"loop": lambda: newton_scan_reference(model, z0, x)}
    for scan in scans:
        solvers[f"newton_{scan}"] = lambda scan=scan: newton_scan(model, z0, x, jacobian=model.jacobian, scan=scan)
    expected = newton_scan_reference(model, z0, x)[0].detach()
    rows = []
    for name, solve in solvers.items():
        with torch.no_grad():
            z, info = solve()
        row = {"M": width, "T": steps, "batch": BATCH, "device": device.type, "method": name}
        row["iterations"], row["max_abs_error"] = info.iterations, (z - expected).abs().max().item()

        def fwd(solve=solve):
            with torch.no_grad():
                solve()

        def fwd_bwd(solve=solve):
            (solve()[0] * weight).sum().backward()

        row["fwd_ms"], row["fwd+bwd_ms"] = timer(fwd), timer(fwd_bwd)
        rows.append(row)
        print_row(row, rows[0])
    return rows


def print_row(row: dict, loop: dict) -> None:
    speedups = [loop[f"{mode}_ms"] / row[f"{mode}_ms"] for mode in ("fwd", "fwd+bwd")]
    print(
        f"{row['device']:>6} {row['M']:>4} {row['T']:>5} {row['method']:>16} {row['iterations']:>5} "
        f"{row['fwd_ms']:10.2f} {speedups[0]:7.2f}x {row['fwd+bwd_ms']:10.2f} {speedups[1]:7.2f}x "
        f"{row['max_abs_error']:9.1e}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench newton_scan", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None, help="default: cpu and cuda")
    parser.add_argument("--scans", nargs="+", choices=["chunked", "doubling"], default=["chunked", "doubling"])
    parser.add_argument("--repeats", type=int, default=3, help="host-timed runs per CPU measurement")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--devices cuda asked for, but there is no CUDA device")
    name = torch.cuda.get_device_name() if "cuda" in devices else f"cpu_{torch.get_num_threads()}threads"
    report = {
        "gpu": name,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "dtype": "float32",
        "results": [],
    }
    print(
        f"{'device':>6} {'M':>4} {'T':>5} {'method':>16} {'iters':>5} {'fwd ms':>10} {'vs loop':>8} "
        f"{'f+b ms':>10} {'vs loop':>8} {'max err':>9}"
    )
    for device in devices:
        for width in WIDTHS:
            for steps in STEPS:
                report["results"] += time_case(width, steps, torch.device(device), args.scans, args.repeats)
    write_report(report, "newton_scan", args.out)
    return report


if __name__ == "__main__":
    main()
