"""Benchmark the short causal conv (``kernels.causal_conv1d``) on CUDA: Triton against cuDNN, and the floor.

The Triton kernels run against the PyTorch path (cuDNN's grouped ``conv1d``), causal and reversed. The floor is the
fewest bytes the op must move over the device-to-device copy bandwidth: forward read ``x`` and write ``y`` (2
streams of ``[B, T, D]``), backward read ``x`` and ``dy`` and write ``dx`` (3 streams; the weight and bias gradients
are reductions of a few KB). Shapes: a Mamba block's inner width at ``T = 4096`` and LION's groups (``d_inner`` 256
at dim 128), bfloat16, kernel width 4, SiLU. Results go to ``benchmarks/results/causal_conv1d_<gpu>.json``.

    lrnn bench causal_conv1d
"""

import argparse
from pathlib import Path

import torch
from lrnn.benchmarks.scan import against_floor, copy_bandwidth, environment, forced_face, median_ms, write_report

SHAPES = [(8, 4096, 3072), (256, 4096, 256)]
WIDTH = 4
FACES = ("torch", "triton")


def conv_inputs(shape, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(shape, device=device, generator=gen).to(dtype)
    weight = (torch.randn(shape[2], WIDTH, device=device, generator=gen) / WIDTH**0.5).to(dtype)
    bias = torch.randn(shape[2], device=device, generator=gen).to(dtype)
    return x, weight, bias, torch.randn(shape, device=device, generator=gen).to(dtype)


def time_face(face: str, x, weight, bias, dy, reverse: bool) -> dict[str, float]:
    """Forward and forward+backward medians (ms) of ``causal_conv1d`` with ``LRNN_KERNEL_BACKEND=face``."""
    from lrnn.kernels.causal_conv1d import causal_conv1d

    leaves = [t.detach().requires_grad_() for t in (x, weight, bias)]

    def fwd_bwd():
        y, _ = causal_conv1d(*leaves, "silu", reverse=reverse)
        torch.autograd.grad(y, leaves, dy)

    with forced_face("LRNN_KERNEL_BACKEND", face):
        return {
            "fwd": median_ms(lambda: causal_conv1d(x, weight, bias, "silu", reverse=reverse)),
            "fwd+bwd": median_ms(fwd_bwd),
        }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench causal_conv1d", description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit(
            "lrnn bench causal_conv1d needs a CUDA GPU (the CPU runs the kernels only under the interpreter)"
        )
    device, dtype = torch.device("cuda"), getattr(torch, args.dtype)
    bandwidth = copy_bandwidth(device)
    report = {**environment(device), "copy_bandwidth_TBps": bandwidth / 1e12, "width": WIDTH, "results": []}
    print(f"{report['gpu']}: device-to-device copy {bandwidth / 1e12:.2f} TB/s")
    print(f"{'shape':>14} {'reverse':>7} {'mode':>8} {'torch ms':>9} {'triton ms':>9} {'floor':>7} {'%floor':>7}  x")
    for shape in SHAPES:
        x, weight, bias, dy = conv_inputs(shape, dtype, device)
        stream_bytes = x.numel() * x.element_size()
        floors = {"fwd": 2 * stream_bytes, "fwd+bwd": 5 * stream_bytes}
        for reverse in (False, True):
            times = {face: time_face(face, x, weight, bias, dy, reverse) for face in FACES}
            for mode, floor in floors.items():
                floor_ms = floor / bandwidth * 1e3
                row = {"shape": list(shape), "dtype": args.dtype, "reverse": reverse, "mode": mode}
                columns = against_floor(row, times, mode, floor_ms)
                report["results"].append(row)
                print(f"{'x'.join(map(str, shape)):>14} {str(reverse):>7} {mode:>8} {columns}")
        del x, weight, bias, dy
        torch.cuda.empty_cache()
    write_report(report, "causal_conv1d", args.out)
    return report


if __name__ == "__main__":
    main()
