"""Inference throughput (images/s) of the Mamba image backbones beside timm's DeiT-T and MambaOut-T.

Every model runs in one process on one GPU, in eval mode under ``torch.no_grad``, eager (no ``torch.compile``), at
224 px with batch 128 and at 1024 px with batch 8 (where Vim claims its advantage over DeiT), in float32 and in
bfloat16 (``torch.autocast``; Vim keeps its float32 residual stream as the paper's model does). Each time is the
median of CUDA-event-timed runs after warm-up; ``--profile`` adds each row's top kernels and host ops. Fixed-size
models (Vim, DeiT: learned position embeddings) are built for each resolution. ``--cuda-graph`` captures each
model's forward once in a CUDA graph and times its replays: that takes the host's cost of launching a model's
kernels out of every row alike (at 1024 px, batch 8, Vim's eager forward waits on the host for half its time).
``--compile`` runs every model through ``torch.compile`` (inductor) instead, which also fuses the small elementwise
and normalisation kernels (PyTorch's eager LayerNorm over 96-384 channels runs far below the copy bandwidth).
Float32 matmuls run without TF32 unless ``--tf32``.

    lrnn bench vision_throughput
    lrnn bench vision_throughput --settings 1024 --dtypes bf16 --models vim_tiny_patch16_224 --profile
    lrnn bench vision_throughput --settings 1024 --dtypes bf16 --cuda-graph
    lrnn bench vision_throughput --settings 1024 --dtypes bf16 --compile --models vmamba_tiny_s1l8 mambaout_tiny
"""

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .profiling import print_profile, profile_call
from .scan import environment, median_ms, write_report

MODELS = ["vim_tiny_patch16_224", "vim_small_patch16_224", "vmamba_tiny_s1l8", "deit_tiny_patch16_224", "mambaout_tiny"]
SETTINGS = {"224": (224, 128), "1024": (1024, 8)}  # name: (image side, batch)
FIXED_SIZE = ("vim_", "deit_")  # models built for one image size
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def graphed(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` captured in a CUDA graph after warm-up on a side stream (as ``torch.cuda.graph`` asks); returns the
    graph's replay, which reruns its kernels on the same buffers without the host."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def measure(
    name: str,
    side: int,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    profile: bool,
    cuda_graph: bool,
    compiled: bool,
) -> dict:
    """Forward-pass throughput (``images_per_s``) of ``timm.create_model(name)`` on ``[batch, 3, side, side]``
    random images, eager or compiled, replayed from a CUDA graph or not, and with ``profile`` where one forward's
    GPU time goes (``profiling.profile_call``)."""
    import timm

    kwargs = dict(img_size=side) if name.startswith(FIXED_SIZE) else {}
    model = timm.create_model(name, **kwargs).to(device).eval()
    if compiled:
        model = torch.compile(model, dynamic=False)
    images = torch.randn(batch, 3, side, side, device=device)

    def forward():
        autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32, cache_enabled=not cuda_graph)
        with torch.no_grad(), autocast:
            return model(images)

    if cuda_graph:
        forward = graphed(forward)
    row = {"images_per_s": batch / (median_ms(forward) * 1e-3)}
    if profile:
        row["profile"] = profile_call(forward)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench vision_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=MODELS, help="timm model names")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--tf32", action="store_true", help="let float32 matmuls and convs use TF32")
    parser.add_argument("--profile", action="store_true", help="also profile one forward of each row")
    parser.add_argument("--cuda-graph", action="store_true", help="time replays of each forward's CUDA graph")
    parser.add_argument("--compile", action="store_true", help="run each model through torch.compile")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("lrnn bench vision_throughput needs a CUDA GPU (it measures GPU inference throughput)")
    import lrnn.vision  # noqa: F401  (registers vim_* and vmamba_* with timm)
    import timm

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    report = {
        **environment(device),
        "timm": timm.__version__,
        "tf32": args.tf32,
        "cuda_graph": args.cuda_graph,
        "compile": args.compile,
        "scan_backend": os.environ.get("LRNN_SCAN_BACKEND", "default (triton on CUDA)"),
        "results": [],
    }
    print(f"{report['gpu']}\n{'model':>24} {'px':>5} {'batch':>5} {'dtype':>5} {'img/s':>10}")
    for setting in args.settings:
        side, batch = SETTINGS[setting]
        for name in args.models:
            for dtype_name in args.dtypes:
                row = {"model": name, "image_size": side, "batch": batch, "dtype": dtype_name}
                try:
                    row.update(
                        measure(
                            name, side, batch, DTYPES[dtype_name], device, args.profile, args.cuda_graph, args.compile
                        )
                    )
                    shown = f"{row['images_per_s']:10.1f}"
                except torch.OutOfMemoryError:
                    row["error"] = shown = "out of memory"
                except RuntimeError as error:  # a model that waits on the host mid-forward cannot be captured
                    row["error"] = shown = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                torch.cuda.empty_cache()
                report["results"].append(row)
                print(f"{name:>24} {side:>5} {batch:>5} {dtype_name:>5} {shown:>10}")
                if "profile" in row:
                    print_profile(row["profile"])
    write_report(report, "vision_throughput", args.out)
    return report


if __name__ == "__main__":
    main()
