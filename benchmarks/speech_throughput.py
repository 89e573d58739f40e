"""Generation throughput and memory of Lina-Speech against a Transformer decoder with a KV cache, on CUDA.

Lina-Speech at the paper's size (the model section of ``configs/audio/lina_ljspeech.yaml``: d 1024, 6 + 6 GLA blocks
of 4 heads) beside ``lrnn.audio.transformer_tts.TransformerTTS`` of the same depth (12 pre-norm decoder blocks, 16
heads, self-attention with a KV cache and cross-attention to the same text encoder; 1.9% fewer parameters). For
each dtype, batch size and generated length, each model runs:

1. prefill: encode ``--text-tokens`` random text bytes, then BOS and ``--prompt-frames`` prompt frames in parallel
   (Lina: ``chunk_gla`` through every GLA block; the Transformer: causal attention, its KV cache allocated for the
   prompt and the frames to come);
2. decoding: ``length`` steps one at a time with the cached states, each feeding back the most likely code of every
   codebook (greedy: no sampling in the timing), with a CUDA event every ``--window`` steps.

Reported per row: prefill ms; ms per step in the first and the last window (and every window in the JSON); frames/s
= batch x length / decoding time (tokens/s with one codebook) and as a multiple of real time (75 frames/s); peak
memory, ``torch.cuda.max_memory_allocated`` over prefill and decoding less the other model's weights, which stay
resident; the bytes of the cache after decoding (Lina: recurrent states and the text memory, constant in length;
the Transformer: its KV cache, linear in it). Times are medians over ``--repeats`` runs after ``--warmup`` runs of
a prefill and a few steps. A row that runs out of memory says so and the run goes on; an interrupt (``timeout -s
INT``) writes the rows done so far. Eager PyTorch, no CUDA graphs; Lina's ``step`` checks its tokens' values on the
host (a device sync per step), as ``LinaSpeech.generate`` does.

    lrnn bench speech_throughput                            # bf16 autocast; batch 1 8 32 128; 500 1500 3000 frames
    lrnn bench speech_throughput --dtypes fp32 --batch-sizes 1 32 --lengths 500
    lrnn bench speech_throughput --device cpu --tiny        # the code path on tiny models (numbers mean nothing)
"""

import argparse
import inspect
import platform
import statistics
import time
from itertools import pairwise
from pathlib import Path

import torch
import yaml
from lrnn.audio.model import LinaCache, LinaSpeech
from lrnn.audio.special_tokens import BOS, N_SPECIAL
from lrnn.audio.text import VOCAB_SIZE
from lrnn.audio.transformer_tts import TransformerTTS
from lrnn.benchmarks.scan import write_report
from lrnn.configs import recipe_path

RECIPE = "audio/lina_ljspeech.yaml"
TINY_LINA = dict(
    codebook_size=16,
    d_model=32,
    num_layers=1,
    num_heads=2,
    text_layers=1,
    text_heads=2,
    position_dim=16,
    max_text_positions=64,
)
HEAD_DIM = 64  # the Transformer's heads: 16 of 64 channels at d 1024 (GPT-2 medium's layout)
FRAME_RATE = 75  # codec frames per second of audio
WARMUP_STEPS = 16  # decoding steps of a warm-up run
DTYPES = ["bf16", "fp32"]  # bf16: autocast
DEFAULTS = {  # sizes of a run, paper-size models or --tiny
    "paper": dict(
        batch_sizes=[1, 8, 32, 128], lengths=[500, 1500, 3000], text_tokens=256, prompt_frames=225, window=100
    ),
    "tiny": dict(batch_sizes=[1, 2], lengths=[3, 5], text_tokens=6, prompt_frames=2, window=2),
}


def lina_config(tiny: bool) -> dict:
    """``LinaSpeech`` arguments: the recipe's model section (those ``LinaSpeech`` takes), or tiny sizes."""
    if tiny:
        return dict(TINY_LINA)
    init_args = yaml.safe_load(recipe_path(RECIPE).read_text())["model"]["init_args"]
    return {name: init_args[name] for name in inspect.signature(LinaSpeech).parameters if name in init_args}


def transformer_config(lina: dict) -> dict:
    """``TransformerTTS`` arguments for Lina-Speech's: its codebooks, width, text encoder and depth
    (``2 num_layers``), heads of ``HEAD_DIM`` channels."""
    shared = ("codebook_size", "num_codebooks", "d_model", "text_layers", "text_heads")
    config = {name: lina[name] for name in shared if name in lina}
    return config | dict(num_layers=2 * lina["num_layers"], num_heads=max(1, lina["d_model"] // HEAD_DIM))


def lina_prefill(
    model: LinaSpeech, text: torch.Tensor, text_mask: torch.Tensor, audio: torch.Tensor
) -> tuple[torch.Tensor, LinaCache]:
    """``LinaSpeech.step`` over all of ``audio [B, P, q]`` at once (the parallel forms of its blocks, from the states
    of ``init_cache``) -> ``(logits [B, q, V]`` for step ``P``, the cache after it)."""
    cache = model.init_cache(text, text_mask)
    x = model._embed(audio)
    encoder_states = []
    for block, state in zip(model.encoder, cache.encoder_states, strict=True):
        x, state = block(x, state)
        encoder_states.append(state)
    attended, pos_net_state = model.cross_attention(x, cache.memory, cache.pos_net_state)
    x = x + attended
    decoder_states = []
    for block, state in zip(model.decoder, cache.decoder_states, strict=True):
        x, state = block(x, state)
        decoder_states.append(state)
    return model._logits(x[:, -1]), LinaCache(cache.memory, encoder_states, pos_net_state, decoder_states)


def prefill(model: LinaSpeech | TransformerTTS, text, text_mask, audio, frames: int):
    """Either model's prefill of ``audio [B, P, q]``, ready for ``frames`` decoding steps -> ``(logits, cache)``."""
    if isinstance(model, LinaSpeech):
        return lina_prefill(model, text, text_mask, audio)
    return model.prefill(text, text_mask, audio, capacity=audio.shape[1] + frames)


class Clock:
    """Time marks on ``device``: CUDA events recorded on the current stream, or the host clock on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks = []

    def mark(self) -> None:
        if self.cuda:
            self.marks.append(torch.cuda.Event(enable_timing=True))
            self.marks[-1].record()
        else:
            self.marks.append(time.perf_counter())

    def intervals_ms(self) -> list[float]:
        """Milliseconds between consecutive marks (waits for the device)."""
        if self.cuda:
            torch.cuda.synchronize()
            return [start.elapsed_time(end) for start, end in pairwise(self.marks)]
        return [1e3 * (end - start) for start, end in pairwise(self.marks)]


def generate(model, inputs: tuple, frames: int, window: int, clock: Clock):
    """Prefill ``inputs`` (text, mask, audio), then ``frames`` greedy steps; ``clock`` is marked before the prefill,
    after it and every ``window`` steps, and at the end. Returns the cache after the last step."""
    clock.mark()
    logits, cache = prefill(model, *inputs, frames)
    for step in range(frames):
        if step % window == 0:
            clock.mark()
        logits, cache = model.step(logits.argmax(dim=-1), cache)
    clock.mark()
    return cache


def tensor_bytes(obj) -> int:
    """Bytes of the tensors in ``obj``, a tensor or nested tuples and lists of them (other leaves count 0)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, tuple | list):
        return sum(tensor_bytes(item) for item in obj)
    return 0


def make_inputs(model, batch: int, text_tokens: int, prompt_frames: int, device: torch.device) -> tuple:
    """Random ``text [B, text_tokens]`` bytes (all tokens), its mask, and ``audio [B, 1 + prompt_frames, q]``: BOS then
    random codes (the delay layout's fill does not matter for timing)."""
    gen = torch.Generator(device=device).manual_seed(0)
    text = torch.randint(N_SPECIAL, VOCAB_SIZE, (batch, text_tokens), device=device, generator=gen)
    shape = (batch, 1 + prompt_frames, model.num_codebooks)
    audio = torch.randint(N_SPECIAL, model.vocab_size, shape, device=device, generator=gen)
    audio[:, 0] = BOS
    return text, torch.ones_like(text, dtype=torch.bool), audio


def measure(model, inputs: tuple, frames: int, args, device: torch.device, resident: int) -> dict:
    """One row's numbers (module docstring); ``resident``: bytes allocated on the device that are not this model's."""
    for _ in range(args.warmup):
        generate(model, inputs, min(frames, WARMUP_STEPS), args.window, Clock(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    runs = []
    for _ in range(args.repeats):
        clock = Clock(device)
        cache_bytes = tensor_bytes(generate(model, inputs, frames, args.window, clock))
        runs.append(clock.intervals_ms())
    prefill_ms, *windows = (statistics.median(times) for times in zip(*runs, strict=True))
    steps = [min(args.window, frames - start) for start in range(0, frames, args.window)]
    per_step = [ms / n for ms, n in zip(windows, steps, strict=True)]
    frames_per_s = inputs[0].shape[0] * frames / (sum(windows) * 1e-3)
    row = {
        "prefill_ms": round(prefill_ms, 3),
        "decode_s": round(sum(windows) * 1e-3, 4),
        "frames_per_s": round(frames_per_s, 1),
        "realtime": round(frames_per_s / FRAME_RATE, 2),
        "ms_per_step_first": round(per_step[0], 4),
        "ms_per_step_last": round(per_step[-1], 4),
        "ms_per_step": [[sum(steps[: i + 1]), round(ms, 4)] for i, ms in enumerate(per_step)],
        "cache_gib": round(cache_bytes / 2**30, 4),
        "peak_gib": None,
    }
    if device.type == "cuda":
        row["peak_gib"] = round((torch.cuda.max_memory_allocated() - resident) / 2**30, 3)
    return row


def run_row(model, dtype: str, batch: int, frames: int, args, device: torch.device, resident: int) -> dict:
    """``measure`` under ``dtype`` (bf16: autocast) on fresh inputs, or ``{"error": "out of memory"}``; what the row
    allocated is freed when this returns."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    try:
        with torch.no_grad(), autocast:
            inputs = make_inputs(model, batch, args.text_tokens, args.prompt_frames, device)
            return measure(model, inputs, frames, args, device, resident)
    except torch.OutOfMemoryError:
        return {"error": "out of memory"}


def comparison(rows: list[dict]) -> list[dict]:
    """Per dtype, batch and length where both models ran: Lina's frames/s over the Transformer's, and the
    Transformer's peak memory over Lina's."""
    done = {(r["model"], r["dtype"], r["batch"], r["frames"]): r for r in rows if "frames_per_s" in r}
    pairs = []
    for (model, dtype, batch, frames), lina in done.items():
        other = done.get(("transformer", dtype, batch, frames))
        if model != "lina" or other is None:
            continue
        pair = {"dtype": dtype, "batch": batch, "frames": frames}
        pair["lina_speedup"] = round(lina["frames_per_s"] / other["frames_per_s"], 3)
        if lina["peak_gib"]:
            pair["transformer_memory_ratio"] = round(other["peak_gib"] / lina["peak_gib"], 3)
        pairs.append(pair)
    return pairs


def describe(pair: dict) -> str:
    """One line of ``comparison``."""
    line = f"{pair['dtype']} batch {pair['batch']}, {pair['frames']} frames: Lina {pair['lina_speedup']:.2f}x the "
    line += "Transformer's frames/s"
    if "transformer_memory_ratio" in pair:
        line += f", the Transformer {pair['transformer_memory_ratio']:.2f}x Lina's peak memory"
    return line


HEADER = (
    f"{'model':>11} {'dtype':>5} {'batch':>5} {'frames':>6} {'prefill ms':>10} {'ms/step first':>13} "
    f"{'last':>8} {'frames/s':>10} {'x realtime':>10} {'peak GiB':>8} {'cache GiB':>9}"
)


def show(row: dict) -> str:
    """One line of the table."""
    start = f"{row['model']:>11} {row['dtype']:>5} {row['batch']:>5} {row['frames']:>6}"
    if "error" in row:
        return f"{start} {row['error']:>10}"
    peak = "-" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
    return (
        f"{start} {row['prefill_ms']:10.2f} {row['ms_per_step_first']:13.3f} {row['ms_per_step_last']:8.3f} "
        f"{row['frames_per_s']:10.1f} {row['realtime']:10.1f} {peak:>8} {row['cache_gib']:9.3f}"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench speech_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu only with --tiny")
    parser.add_argument("--tiny", action="store_true", help="tiny models and lengths: checks the code path")
    parser.add_argument("--dtypes", nargs="+", default=["bf16"], choices=DTYPES, help="bf16: autocast")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="default 1 8 32 128 (tiny: 1 2)")
    parser.add_argument("--lengths", nargs="+", type=int, help="generated frames; default 500 1500 3000 (tiny: 3 5)")
    parser.add_argument("--text-tokens", type=int, help="text bytes per item; default 256 (tiny: 6)")
    parser.add_argument("--prompt-frames", type=int, help="audio prompt frames after BOS; default 225 = 3 s (tiny: 2)")
    parser.add_argument("--window", type=int, help="decoding steps per timed window; default 100 (tiny: 2)")
    parser.add_argument("--warmup", type=int, default=1, help=f"untimed runs of a prefill and {WARMUP_STEPS} steps")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per row (medians)")
    parser.add_argument("--tf32", action="store_true", help="let float32 matmuls use TF32")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    for name, value in DEFAULTS["tiny" if args.tiny else "paper"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    sizes = [*args.batch_sizes, *args.lengths, args.text_tokens, args.window, args.repeats]
    if min(sizes) < 1 or args.prompt_frames < 0 or args.warmup < 0:
        raise SystemExit(
            "batch sizes, lengths, text tokens, window and repeats must be >= 1, prompt frames and warmup >= 0; got "
            f"{args.batch_sizes}, {args.lengths}, {args.text_tokens}, {args.window}, {args.repeats}, "
            f"{args.prompt_frames}, {args.warmup}"
        )
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "lrnn bench speech_throughput needs a CUDA GPU (it measures GPU generation throughput); "
            "--device cpu --tiny checks the code path on the CPU"
        )
    if args.device == "cpu" and not args.tiny:
        raise SystemExit("lrnn bench speech_throughput: --device cpu runs only with --tiny (paper-size models)")
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    lina = lina_config(args.tiny)
    configs = {"lina": lina, "transformer": transformer_config(lina)}
    torch.manual_seed(0)
    with torch.device(device):
        models = {"lina": LinaSpeech(**lina).eval(), "transformer": TransformerTTS(**configs["transformer"]).eval()}
    weights = {name: tensor_bytes(list(model.parameters())) for name, model in models.items()}
    report = {
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "settings": {key: value for key, value in vars(args).items() if key != "out"},
        "models": {
            name: {
                "class": type(model).__name__,
                "config": configs[name],
                "params": sum(p.numel() for p in model.parameters()),
                "weights_gib": round(weights[name] / 2**30, 3),
            }
            for name, model in models.items()
        },
        "results": [],
    }
    print(f"{report['gpu']}: " + ", ".join(f"{n} {m['params'] / 1e6:.1f}M" for n, m in report["models"].items()))
    print(HEADER, flush=True)
    try:
        for dtype in args.dtypes:
            for batch in args.batch_sizes:
                for frames in args.lengths:
                    for name, model in models.items():
                        row = {"model": name, "dtype": dtype, "batch": batch, "frames": frames}
                        resident = sum(weights.values()) - weights[name]
                        row.update(run_row(model, dtype, batch, frames, args, device, resident))
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                        report["results"].append(row)
                        print(show(row), flush=True)
    except KeyboardInterrupt:
        report["interrupted"] = True
        print("interrupted: writing the rows done so far")
    report["comparison"] = comparison(report["results"])
    for pair in report["comparison"]:
        print(describe(pair))
    write_report(report, "speech_throughput_tiny" if args.tiny else "speech_throughput", args.out)
    return report


if __name__ == "__main__":
    main()
