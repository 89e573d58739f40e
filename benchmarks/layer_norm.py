"""Benchmark ``kernels.layer_norm`` on CUDA: the Triton kernels against PyTorch's ``F.layer_norm``, and the floor.

The floor is the fewest bytes the op must move over the device-to-device copy bandwidth: forward read ``x`` and
write ``y`` (2 streams of ``[M, C]``), backward read ``x`` and ``dy`` and write ``dx`` (3 streams; the statistics
and the parameter gradients are a few MB). Shapes: the maps VMamba-T normalises at 1024 px, batch 8 (stages 1-4:
96-768 channels), and a LION frame's 150,000 voxels at 128 channels. Results go to
``benchmarks/results/layer_norm_<gpu>.json``.

    lrnn bench layer_norm
    lrnn bench layer_norm --profile   # and the GPU kernels of the Triton face's forward+backward per shape
"""

import argparse
from pathlib import Path

import torch
from lrnn.benchmarks.scan import (
    against_floor,
    copy_bandwidth,
    environment,
    forced_face,
    kernel_times,
    median_ms,
    write_report,
)

SHAPES = [(524288, 96), (131072, 192), (32768, 384), (8192, 768), (150000, 128)]  # (rows M, channels C)
FACES = ("torch", "triton")


def time_face(face: str, x, weight, bias, dy, profile: bool = False) -> dict:
    """Forward and forward+backward medians (ms) of ``layer_norm`` with ``LRNN_KERNEL_BACKEND=face``, and with
    ``profile`` the GPU kernels of one forward+backward (``kernels``), which tell kernel time from host time."""
    from lrnn.kernels.layer_norm import layer_norm

    leaves = [t.detach().requires_grad_() for t in (x, weight, bias)]

    def fwd_bwd():
        torch.autograd.grad(layer_norm(*leaves), leaves, dy)

    with forced_face("LRNN_KERNEL_BACKEND", face):
        times = {"fwd": median_ms(lambda: layer_norm(x, weight, bias)), "fwd+bwd": median_ms(fwd_bwd)}
        return {**times, "kernels": kernel_times(fwd_bwd)} if profile else times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench layer_norm", description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "bfloat16"], default=["float32", "bfloat16"])
    parser.add_argument("--profile", action="store_true", help="also list the Triton face's kernels per shape")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("lrnn bench layer_norm needs a CUDA GPU (the CPU runs the kernels only under the interpreter)")
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    report = {**environment(device), "copy_bandwidth_TBps": bandwidth / 1e12, "results": []}
    print(f"{report['gpu']}: device-to-device copy {bandwidth / 1e12:.2f} TB/s")
    print(f"{'M x C':>12} {'dtype':>8} {'mode':>8} {'torch ms':>9} {'triton ms':>9} {'floor':>7} {'%floor':>7}  x")
    gen = torch.Generator(device=device).manual_seed(0)
    for dtype_name in args.dtypes:
        for rows, channels in SHAPES:
            dtype = getattr(torch, dtype_name)
            x, dy = (torch.randn(rows, channels, device=device, generator=gen).to(dtype) for _ in range(2))
            weight, bias = (torch.randn(channels, device=device, generator=gen).to(dtype) for _ in range(2))
            times = {face: time_face(face, x, weight, bias, dy, args.profile and face == "triton") for face in FACES}
            if args.profile:
                kernels = times["triton"].pop("kernels")
                profile = {"rows": rows, "channels": channels, "dtype": dtype_name, "kernels": kernels}
                report.setdefault("profiles", []).append(profile)
                for kernel in kernels[:4]:
                    print(f"{'':>12} {kernel['ms']:8.3f} ms x{kernel['calls']:<4g} {kernel['kernel'][:70]}")
            stream_bytes = x.numel() * x.element_size()
            for mode, streams in (("fwd", 2), ("fwd+bwd", 5)):
                floor_ms = streams * stream_bytes / bandwidth * 1e3
                row = {"rows": rows, "channels": channels, "dtype": dtype_name, "mode": mode}
                columns = against_floor(row, times, mode, floor_ms)
                report["results"].append(row)
                print(f"{f'{rows}x{channels}':>12} {dtype_name:>8} {mode:>8} {columns}")
    write_report(report, "layer_norm", args.out)
    return report


if __name__ == "__main__":
    main()
