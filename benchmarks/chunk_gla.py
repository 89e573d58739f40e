"""Benchmark ``chunk_gla`` on CUDA: our Triton face beside fla's ``chunk_gla`` and causal SDPA, in one run.

Shapes: ``B * T = 32768`` tokens, ``H = 16``, ``K = V = 128``, bfloat16, ``T`` in 2048 ... 32768; per-key gates
``logsigmoid(randn)`` clamped at -5 (fla's benchmark recipe). Modes ``fwd`` and ``fwd+bwd`` (gradients of q, k, v
and g), timed as ``triton.testing.do_bench`` medians. TFLOP/s use the FLOP model of the kernel survey (section 7.2):
``4 K V + 2 C (K + V)`` per token and head forward with chunk ``C = 64``, three times that forward and backward; for
causal SDPA ``2 T (K + V) / 2`` per token and head forward, 3.5 times that forward and backward. Results go to
``benchmarks/results/chunk_gla_<gpu>.json``.

    lrnn bench chunk_gla
    lrnn bench chunk_gla --lengths 4096 --no-sdpa
"""

import argparse
import os
from pathlib import Path

import torch

from .scan import add_config_argument, config_entries, environment, kernel_times, median_ms, write_report

TOKENS, HEADS, DIM, CHUNK = 32768, 16, 128, 64
LENGTHS = [2048, 4096, 8192, 16384, 32768]
MODES = ("fwd", "fwd+bwd")


def gla_flops(batch: int, steps: int, mode: str) -> float:
    per_token_head = 4 * DIM * DIM + 2 * CHUNK * (DIM + DIM)
    return batch * steps * HEADS * per_token_head * (1 if mode == "fwd" else 3)


def sdpa_flops(batch: int, steps: int, mode: str) -> float:
    per_token_head = steps * (DIM + DIM)
    return batch * steps * HEADS * per_token_head * (1 if mode == "fwd" else 3.5)


def make_inputs(batch: int, steps: int, device: torch.device) -> dict:
    gen = torch.Generator(device=device).manual_seed(0)
    shape = (batch, steps, HEADS, DIM)
    randn = lambda: torch.randn(shape, device=device, generator=gen, dtype=torch.bfloat16)
    g = torch.nn.functional.logsigmoid(torch.randn(shape, device=device, generator=gen)).clamp_min(-5)
    return {"q": randn(), "k": randn(), "v": randn(), "g": g.to(torch.bfloat16), "do": randn()}


def time_op(op, inputs: dict, names: tuple[str, ...]) -> dict[str, float]:
    """Forward and forward+backward medians (ms) of ``op(*inputs[names]) -> o``."""
    leaves = [inputs[n].detach().requires_grad_() for n in names]
    do = inputs["do"]

    def fwd_bwd():
        torch.autograd.grad(op(*leaves), leaves, do)

    with torch.no_grad():
        fwd = median_ms(lambda: op(*(inputs[n] for n in names)))
    fwd_bwd()
    return {"fwd": fwd, "fwd+bwd": median_ms(fwd_bwd)}


def ours(q, k, v, g):
    from lrnn.core.scan.gla import chunk_gla

    return chunk_gla(q, k, v, g)[0]


def override_config(**settings: int) -> None:
    """Run our chunk_gla kernels with ``settings`` over ``launch_config``'s (``num_warps``, ``BK_DQK``: the key tile
    of the dq/dk kernel, ``BV_O`` and ``WARPS_O``: the output kernel's value tile and warps, ...); kernel_sass.py
    shows their registers and spills."""
    from lrnn.core.scan.gla import triton as face

    default = face.launch_config
    face.launch_config = lambda key_dim, value_dim: {**default(key_dim, value_dim), **settings}


def fla_op():
    """fla's ``chunk_gla`` as ``(q, k, v, g) -> o``, or None when fla does not import or run here."""
    try:
        from fla.ops.gla import chunk_gla as fla_chunk_gla
    except ImportError:
        return None
    return lambda q, k, v, g: fla_chunk_gla(q, k, v, g)[0]


def sdpa(q, k, v):
    o = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
    )
    return o.transpose(1, 2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench chunk_gla", description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=LENGTHS, help="sequence lengths T")
    parser.add_argument("--no-sdpa", action="store_true", help="skip causal scaled_dot_product_attention")
    parser.add_argument("--no-fla", action="store_true", help="skip fla (its first call autotunes for minutes)")
    parser.add_argument("--num-warps", type=int, default=None, help="our kernels' warps (default: launch_config's)")
    parser.add_argument("--dqk-key-tile", type=int, default=None, help="the dq/dk kernel's key tile (default: BK)")
    add_config_argument(parser, "BV_O=64")
    parser.add_argument("--profile", action="store_true", help="also list each kernel's time (first length only)")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("lrnn bench chunk_gla needs a CUDA GPU; the CPU runs the kernels only under the interpreter")

    os.environ["LRNN_SCAN_BACKEND"] = "triton"
    entries = config_entries(args.config)
    overrides = {"num_warps": args.num_warps, "BK_DQK": args.dqk_key_tile} | entries
    override_config(**{key: value for key, value in overrides.items() if value is not None})
    device = torch.device("cuda")
    peer = None if args.no_fla else fla_op()
    report = {
        **environment(device),
        "config": {
            "tokens": TOKENS,
            "heads": HEADS,
            "K": DIM,
            "V": DIM,
            "dtype": "bfloat16",
            "gate": "per_key",
            "num_warps": args.num_warps,
            "dqk_key_tile": args.dqk_key_tile,
            "overrides": entries,
        },
        "results": [],
    }
    try:
        for steps in args.lengths:
            peer = measure_length(report, steps, peer, args.no_sdpa, args.profile and "profile" not in report, device)
    except KeyboardInterrupt:  # a time limit (SIGINT): keep what was measured
        print("interrupted: writing the rows measured so far")
    print_table(report)
    write_report(report, "chunk_gla", args.out)
    return report


def measure_length(report: dict, steps: int, peer, no_sdpa: bool, profile: bool, device: torch.device):
    """Time ours, then fla (``peer``, unless None) and SDPA, at length ``steps``; adds one row a mode to
    ``report["results"]`` and, with ``profile``, the per-kernel times (ours first, so a time limit that stops fla's
    autotune keeps them). Returns ``peer``, or None once it has failed (it is not tried at the next lengths)."""
    batch = max(1, TOKENS // steps)
    inputs = make_inputs(batch, steps, device)
    times = {"ours": time_op(ours, inputs, ("q", "k", "v", "g"))}
    print(f"B={batch} T={steps} ours: {times['ours']}", flush=True)
    if profile:
        report["profile"] = profile_kernels(inputs, {"ours": ours})
    if peer is not None:
        try:
            times["fla"] = time_op(peer, inputs, ("q", "k", "v", "g"))
            print(f"B={batch} T={steps} fla: {times['fla']}", flush=True)
            if profile:
                report["profile"] |= profile_kernels(inputs, {"fla": peer})
        except Exception as error:  # noqa: BLE001 - a failure of the peer is reported, not fatal
            print(f"fla chunk_gla does not run here: {type(error).__name__}: {error}")
            peer = None
    if not no_sdpa:
        times["sdpa"] = time_op(sdpa, inputs, ("q", "k", "v"))
    for mode in MODES:
        row = {"B": batch, "T": steps, "mode": mode}
        for name, measured in times.items():
            flops = (sdpa_flops if name == "sdpa" else gla_flops)(batch, steps, mode)
            row[f"{name}_ms"] = measured[mode]
            row[f"{name}_TFLOPs"] = flops / (measured[mode] * 1e-3) / 1e12
        for name in ("fla", "sdpa"):
            if f"{name}_ms" in row:
                row[f"speedup_vs_{name}"] = row[f"{name}_ms"] / row["ours_ms"]
        report["results"].append(row)
    return peer


def profile_kernels(inputs: dict, ops: dict) -> dict[str, list[dict]]:
    """Per-kernel times of one forward+backward of each of ``ops`` (name -> op); prints the ten longest of each."""
    profiles = {}
    for name, op in ops.items():
        leaves = [inputs[n].detach().requires_grad_() for n in ("q", "k", "v", "g")]
        profiles[name] = kernel_times(lambda: torch.autograd.grad(op(*leaves), leaves, inputs["do"]))  # noqa: B023
        print(f"{name}: forward+backward kernels (ms per call)")
        for row in profiles[name][:10]:
            print(f"  {row['ms']:8.3f}  x{row['calls']:<4g} {row['kernel'][:100]}")
    return profiles


def print_table(report: dict) -> None:
    header = f"{'B':>3} {'T':>6} {'mode':>8} {'ours ms':>8} {'TF/s':>6}"
    print(f"{header} {'fla ms':>8} {'x fla':>6} {'sdpa ms':>8} {'x sdpa':>6}")
    for r in report["results"]:
        cells = []
        for name in ("fla", "sdpa"):
            ms = r.get(f"{name}_ms")
            cells.append(f"{ms:8.3f} {r[f'speedup_vs_{name}']:6.2f}" if ms else f"{'-':>8} {'-':>6}")
        print(f"{r['B']:>3} {r['T']:>6} {r['mode']:>8} {r['ours_ms']:8.3f} {r['ours_TFLOPs']:6.1f} {' '.join(cells)}")


if __name__ == "__main__":
    main()
