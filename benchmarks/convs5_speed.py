"""ConvS5 against ConvLSTM on the long-horizon Moving-MNIST sizes, on CUDA: the speed claims of the ConvS5 paper.

1. Training step time (forward, backward and AdamW step) on ``--frames`` frames (300: the paper's training
   length), 64x64, the official models (d_model 256, 8 layers, encoder 64x64 -> 16x16): the whole model, and the
   8 sequence layers alone on 16x16 latents (the part where the two differ). The paper: ConvS5 trains up to 3x
   faster than ConvLSTM.
2. Autoregressive sampling: condition on ``--context`` frames (parallel for ConvS5, a loop for ConvLSTM), then
   generate ``--generate`` frames one at a time with the step form; frames per second of each phase. Generation is
   timed as ``rollout`` runs it (step weights derived once, ``fixed_step_weights``), with the weights derived
   again every frame (``generate_weights_per_frame``), and as ``rollout(..., cuda_graph=True)`` runs it
   (``generate_cuda_graph``: the step captured once and replayed, the capture and its two warm-up steps
   included), in the same process.

Times are medians of CUDA-event-timed runs after warm-up; ``oom`` marks a case that did not fit. Results go to
``benchmarks/results/convs5_speed_<gpu>.json``.

    lrnn bench convs5_speed                               # batch 2, fp32 and bf16 autocast
    lrnn bench convs5_speed --batch 1 --precision fp32
    lrnn bench convs5_speed --no-training                 # the sampling rows only
"""

import argparse
import contextlib
import platform
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from lrnn.benchmarks.scan import write_report
from lrnn.vision.video import ConvLSTMVideo, ConvS5Video
from lrnn.vision.video.cuda_graph_rollout import generate_with_cuda_graph
from lrnn.vision.video.losses import next_frame_loss

MODELS = {"convs5": ConvS5Video, "convlstm": ConvLSTMVideo}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def cuda_median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` CUDA-event-timed runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure(fn: Callable[[], object], warmup: int, repeats: int) -> dict:
    """``{"ms", "peak_gib"}`` of ``fn``, or ``{"oom": True}`` when it runs out of GPU memory."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        ms = cuda_median_ms(fn, warmup, repeats)
    except torch.OutOfMemoryError:
        return {"oom": True}
    finally:
        torch.cuda.synchronize()
    return {"ms": round(ms, 2), "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def training_steps(model: torch.nn.Module, video: torch.Tensor, dtype: torch.dtype | None) -> dict:
    """Step functions: the whole model on ``video [B, T, 1, 64, 64]``, and its sequence layers on latents."""
    batch, steps = video.shape[0], video.shape[1] - 1
    latents = torch.randn(batch, steps, model.d_model, model.latent_size, model.latent_size, device=video.device)
    model_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-5)
    layer_optimizer = torch.optim.AdamW(model.layers.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-5)
    autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype is not None)

    def whole_model():
        model_optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = next_frame_loss(model(video[:, :-1])[0], video[:, 1:])[0]
        loss.backward()
        model_optimizer.step()

    def sequence_layers():
        layer_optimizer.zero_grad(set_to_none=True)
        with autocast:
            u = latents
            for layer in model.layers:
                u, _ = layer(u)
            loss = u.float().square().mean()
        loss.backward()
        layer_optimizer.step()

    return {"model": whole_model, "sequence_layers": sequence_layers}


def sampling(model: torch.nn.Module, video: torch.Tensor, context: int, generate: int, dtype, warmup, repeats):
    """Milliseconds to condition on ``context`` frames and to generate ``generate`` frames with the step form."""
    autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype is not None)
    with torch.no_grad(), autocast:
        condition = measure(lambda: model(video[:, :context]), warmup, repeats)
        if condition.get("oom"):
            return {"condition": condition}
        predictions, states = model(video[:, :context])

        def generate_frames(fixed_weights: bool):
            frame, carried = predictions[:, -1], list(states)
            with model.fixed_step_weights() if fixed_weights else contextlib.nullcontext():
                for _ in range(generate):
                    frame, carried = model.step(frame, carried)

        def generate_from_graph():
            with model.fixed_step_weights():
                generate_with_cuda_graph(model.step, predictions[:, -1], states, generate + 1)

        rollout = measure(lambda: generate_frames(True), warmup, repeats)
        per_frame = measure(lambda: generate_frames(False), warmup, repeats)
        graphed = measure(generate_from_graph, warmup, repeats)
    row = {
        "condition": condition,
        "generate": rollout,
        "generate_weights_per_frame": per_frame,
        "generate_cuda_graph": graphed,
    }
    batch = video.shape[0]
    if "ms" in condition:
        condition["frames_per_s"] = round(1e3 * batch * context / condition["ms"], 1)
    for timed in (rollout, per_frame, graphed):
        if "ms" in timed:
            timed["frames_per_s"] = round(1e3 * batch * generate / timed["ms"], 1)
            timed["ms_per_frame"] = round(timed["ms"] / generate, 3)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench convs5_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=2, help="sequences per batch (the paper: 8 over several GPUs)")
    parser.add_argument("--frames", type=int, default=300, help="training sequence length")
    parser.add_argument("--context", type=int, default=100, help="frames to condition on before sampling")
    parser.add_argument("--generate", type=int, default=100, help="frames generated one at a time")
    parser.add_argument("--precision", nargs="+", choices=sorted(PRECISIONS), default=["fp32", "bf16"])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["convs5", "convlstm"])
    parser.add_argument("--training", action=argparse.BooleanOptionalAction, default=True, help="the training rows")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=str, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("lrnn bench convs5_speed needs a CUDA GPU (the paper's speed claims are GPU timings)")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    report = {
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": {
            **{key: value for key, value in vars(args).items() if key != "out"},
            "image_size": 64,
            "cudnn_benchmark": True,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        },
        "train": [],
        "sampling": [],
    }
    gen = torch.Generator(device=device).manual_seed(0)
    video = torch.rand(args.batch, max(args.frames, args.context), 1, 64, 64, device=device, generator=gen) * 2 - 1
    for name in args.models:
        torch.manual_seed(0)
        model = MODELS[name]().to(device)
        params = sum(p.numel() for p in model.parameters())
        for precision in args.precision:
            dtype = PRECISIONS[precision]
            model.train()
            steps = training_steps(model, video[:, : args.frames], dtype) if args.training else {}
            for part, step in steps.items():
                row = {"model": name, "params": params, "precision": precision, "part": part, "frames": args.frames}
                row.update(measure(step, args.warmup, args.repeats))
                report["train"].append(row)
                print(row, flush=True)
            model.eval()
            row = {"model": name, "precision": precision, "batch": args.batch, "context": args.context}
            row.update(sampling(model, video, args.context, args.generate, dtype, args.warmup, args.repeats))
            report["sampling"].append(row)
            print(row, flush=True)
        del model
    report["train_speedup_convlstm_over_convs5"] = speedups(report["train"])
    write_report(report, "convs5_speed", None if args.out is None else Path(args.out))
    return report


def speedups(rows: list[dict]) -> dict:
    """ConvLSTM time / ConvS5 time for each precision and part that both ran."""
    times = {(r["model"], r["precision"], r["part"]): r.get("ms") for r in rows}
    return {
        f"{precision}/{part}": round(times[("convlstm", precision, part)] / ms, 2)
        for (model, precision, part), ms in times.items()
        if model == "convs5" and ms and times.get(("convlstm", precision, part))
    }


if __name__ == "__main__":
    main()
