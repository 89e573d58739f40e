"""Benchmark ``linear_scan`` on CUDA against the memory floor and fla's HGRN scans, in one run.

For each shape and dtype it prints milliseconds, achieved bandwidth and the fraction of the floor, where the
floor is the fewest bytes the op must move (forward: read ``a`` and ``x``, write ``h``; backward: read ``a``,
``h`` and ``dh``, write ``da`` and ``dx``) over the device-to-device copy bandwidth measured in the same run. Beside
it, the time of elementwise kernels that move the same streams with no recurrence (``streams.py``): how near the
copy's rate memory lets this pattern of streams come on this GPU.
If ``fla`` imports, ``chunk_hgrn`` and ``fused_recurrent_hgrn`` (``h_t = exp(g_t) h_{t-1} + x_t``) run on the
same inputs. Results go to ``benchmarks/results/scan_<gpu>.json``.

    lrnn bench scan                 # the standard shapes
    lrnn bench scan --sweep         # also time tile configurations of the Triton kernels
    lrnn bench scan --sweep --lookback --dtype bfloat16 --warps 1 2 4   # ... of the look-back kernels
    lrnn bench scan --sweep --lookback --dtype bfloat16 --warps 1 --tiles 32x64 16x128   # ... of some tiles
    lrnn bench scan --sweep --copy-engine 2 3 4 --dtype bfloat16 --warps 1 --tiles 64x32   # the copy-engine forward
"""

import argparse
import contextlib
import itertools
import json
import os
import platform
from pathlib import Path

import torch

SHAPES = [
    ((8, 4096, 4096), torch.float32),
    ((8, 4096, 4096), torch.bfloat16),
    ((8, 16384, 1536), torch.float32),
    ((8, 16384, 1536), torch.bfloat16),
]
SWEEP_TILES = list(itertools.product((32, 64, 128), (16, 32, 64, 128, 256)))
LOOKBACK_TILES = list(itertools.product((8, 16, 32, 64), (32, 64, 128, 256)))  # short tiles: the time in-thread
MAX_ELEMENTS_PER_THREAD = 128  # larger tiles spill registers
RESULTS = Path(__file__).resolve().parent / "results"


def median_ms(fn) -> float:
    """Median time of ``fn`` in milliseconds over repeated CUDA-event-timed runs after warm-up."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


@contextlib.contextmanager
def forced_face(variable: str, face: str):
    """Runs the block with the environment variable ``variable`` (``LRNN_SCAN_BACKEND`` or ``LRNN_KERNEL_BACKEND``)
    set to ``face``, then restores what it was before (unset if it was unset)."""
    previous = os.environ.get(variable)
    os.environ[variable] = face
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous


def against_floor(row: dict, times: dict[str, dict[str, float]], mode: str, floor_ms: float) -> str:
    """Completes a row of a Triton-against-PyTorch benchmark (``times[face][mode]`` in ms for the faces ``torch``
    and ``triton``): both times, the floor, the Triton face's fraction of the floor and its speedup over the torch
    face. Returns those columns as the benchmarks print them."""
    row.update({"floor_ms": floor_ms, "torch_ms": times["torch"][mode], "triton_ms": times["triton"][mode]})
    row["triton_fraction_of_floor"] = floor_ms / row["triton_ms"]
    row["speedup_vs_torch"] = row["torch_ms"] / row["triton_ms"]
    return (
        f"{row['torch_ms']:9.3f} {row['triton_ms']:9.3f} {floor_ms:7.3f} "
        f"{100 * row['triton_fraction_of_floor']:6.1f}% {row['speedup_vs_torch']:6.2f}"
    )


def kernel_times(fn, repeats: int = 10) -> list[dict]:
    """The GPU kernels one call of ``fn`` launches, with their mean time per call (ms), longest first (torch's
    profiler, after one warm-up call)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
    rows = [
        {"kernel": event.key, "ms": event.device_time_total / 1e3 / repeats, "calls": event.count / repeats}
        for event in profiler.key_averages()
        if event.device_time_total > 0
    ]
    return sorted(rows, key=lambda row: -row["ms"])


def environment(device: torch.device) -> dict[str, str]:
    """The GPU's name and the torch, Triton and Python versions: the head of every GPU benchmark's report."""
    import triton

    return {
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
    }


def copy_bandwidth(device: torch.device) -> float:
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written (2 GiB buffers)."""
    src = torch.randn(2**29, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() * src.element_size() / (median_ms(lambda: dst.copy_(src)) * 1e-3)


def write_report(report: dict, subject: str, out: Path | None) -> Path:
    """Write ``report`` as JSON to ``out`` or ``benchmarks/results/<subject>_<gpu>.json``; returns the path."""
    out = out or RESULTS / f"{subject}_{report['gpu'].replace(' ', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return out


def shapes_of(dtype: str | None) -> list[tuple[tuple[int, int, int], torch.dtype]]:
    """``SHAPES`` of ``dtype`` (all when None); float16 takes bfloat16's shapes, which it has no rows of its own."""
    if dtype == "float16":
        return [(shape, torch.float16) for shape, of in SHAPES if of == torch.bfloat16]
    return [(shape, of) for shape, of in SHAPES if dtype is None or of == getattr(torch, dtype)]


def scan_inputs(shape, dtype, device):
    gen = torch.Generator(device=device).manual_seed(0)
    a = (0.5 + 0.5 * torch.rand(shape, device=device, generator=gen)).to(dtype)
    x = torch.randn(shape, device=device, generator=gen).to(dtype)
    dh = torch.randn(shape, device=device, generator=gen).to(dtype)
    return a, x, dh


def floor_bytes(shape, dtype) -> dict[str, int]:
    elements, size = shape[0] * shape[1] * shape[2], torch.tensor([], dtype=dtype).element_size()
    return {"fwd": 3 * elements * size, "bwd": 5 * elements * size, "fwd+bwd": 8 * elements * size}


def config_entries(entries: list[str]) -> dict[str, int]:
    """``["BV_O=64", ...]`` as ``{"BV_O": 64, ...}``."""
    parsed = {}
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key or not value.isdigit():
            raise SystemExit(f"--config takes KEY=VALUE with an integer value, got {entry!r}")
        parsed[key] = int(value)
    return parsed


def add_config_argument(parser: argparse.ArgumentParser, example: str) -> None:
    """``--config KEY=VALUE ...``: launch_config entries to override (parsed by ``config_entries``)."""
    help_text = f"launch_config entries to override, e.g. {example}"
    parser.add_argument("--config", nargs="+", default=[], metavar="KEY=VALUE", help=help_text)


def for_direction(entries: dict[str, int], direction: str) -> dict[str, int]:
    """The ``--config`` entries that apply to ``direction``: ``KEY`` (both ways) and ``{direction}.KEY``."""
    return {
        key.removeprefix(f"{direction}."): value
        for key, value in entries.items()
        if "." not in key or key.startswith(f"{direction}.")
    }


def override_config(entries: dict[str, int]) -> None:
    """Run linear_scan's Triton face with ``entries`` over ``launch_config``'s, per ``for_direction`` (``BT``,
    ``BD``, ``num_warps``, ``tma`` and ``num_stages`` for the copy-engine kernels, ``lookback``)."""
    from lrnn.core.scan.linear import triton as face

    default = face.launch_config

    def configured(batch: int, width: int, dtype: torch.dtype, direction: str, copy_engine: bool = False) -> dict:
        return {**default(batch, width, dtype, direction, copy_engine), **for_direction(entries, direction)}

    face.launch_config = configured


def scan_fwd_bwd(a, x, dh):
    """One forward and backward of ``linear_scan`` through autograd, as a model's training step runs it."""
    from lrnn.core.scan import linear_scan

    a_leaf, x_leaf = a.detach().requires_grad_(), x.detach().requires_grad_()

    def fwd_bwd():
        out, _ = linear_scan(a_leaf, x_leaf)
        torch.autograd.grad(out, (a_leaf, x_leaf), dh)

    return fwd_bwd


def time_ours(a, x, dh) -> dict[str, float]:
    from lrnn.core.scan import linear_scan
    from lrnn.core.scan.linear.triton import linear_scan_triton_bwd, linear_scan_triton_fwd

    h, _ = linear_scan_triton_fwd(a, x, None, False)
    return {
        "fwd": median_ms(lambda: linear_scan(a, x)),
        "bwd": median_ms(lambda: linear_scan_triton_bwd(a, h, None, dh, None, False)),
        "fwd+bwd": median_ms(scan_fwd_bwd(a, x, dh)),
    }


def time_streams(a, x, dh) -> dict[str, float]:
    """Medians (ms) of the elementwise kernels with the forward's and the backward's streams (``streams.py``)."""
    from .streams import backward_streams, forward_streams

    fwd, bwd = median_ms(lambda: forward_streams(a, x)), median_ms(lambda: backward_streams(a, x, dh))
    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}


def time_fla(a, x, dh) -> dict[str, float]:
    """fla's chunk_hgrn and fused_recurrent_hgrn on the same recurrence (gate passed as ``log a``)."""
    try:
        from fla.ops.hgrn import chunk_hgrn, fused_recurrent_hgrn
    except ImportError:
        return {}
    g = a.float().log().to(a.dtype)
    times = {}
    for name, op in (("fla_chunk_hgrn", chunk_hgrn), ("fla_fused_recurrent_hgrn", fused_recurrent_hgrn)):
        if not fla_runs(op, x, g):
            continue
        g_leaf, x_leaf = g.detach().requires_grad_(), x.detach().requires_grad_()

        def fwd_bwd(op=op, g_leaf=g_leaf, x_leaf=x_leaf):
            out, _ = op(x_leaf, g_leaf)
            torch.autograd.grad(out, (x_leaf, g_leaf), dh)

        times[f"{name}_fwd"] = median_ms(lambda op=op: op(x, g))
        times[f"{name}_fwd+bwd"] = median_ms(fwd_bwd)
    return times


def fla_runs(op, x, g) -> bool:
    """Whether an fla op runs here (some of its kernels are refused on Hopper with recent Triton)."""
    try:
        op(x[:, :256], g[:, :256])
        return True
    except Exception as error:  # noqa: BLE001 - any failure of the peer is reported, not fatal
        print(f"fla {op.__name__} does not run here: {type(error).__name__}: {error}")
        return False


def sweep_configs(
    a, x, dh, warps: list[int], lookback: bool = False, tiles: list | None = None, stages: list[int] | None = None
) -> list[dict]:
    """Kernel times, forward and backward, of every tile in ``tiles`` (default ``SWEEP_TILES``) with each of
    ``warps``; of the look-back kernels (``core/scan/linear/lookback.py``, one program a tile, default tiles
    ``LOOKBACK_TILES``) when ``lookback``; with ``stages``, of the copy-engine kernels (``copy_engine.py``) at each of
    those pipelining depths."""
    from lrnn.core.scan.linear.triton import linear_scan_triton_bwd, linear_scan_triton_fwd

    h, _ = linear_scan_triton_fwd(a, x, None, False)
    rows = []
    tiles = tiles or (LOOKBACK_TILES if lookback else SWEEP_TILES)
    for (bt, bd), num_warps, depth in itertools.product(tiles, warps, stages or [None]):
        if bt * bd > MAX_ELEMENTS_PER_THREAD * 32 * num_warps:
            continue
        cfg = {"BT": bt, "BD": bd, "num_warps": num_warps, "lookback": lookback}
        if depth is not None:
            cfg |= {"tma": True, "num_stages": depth}
        row = {**cfg, "fwd_ms": median_ms(lambda cfg=cfg: linear_scan_triton_fwd(a, x, None, False, cfg))}
        row["bwd_ms"] = median_ms(lambda cfg=cfg: linear_scan_triton_bwd(a, h, None, dh, None, False, cfg))
        rows.append(row)
        times = ", ".join(f"{mode[:3]} {row[mode]:.3f} ms" for mode in ("fwd_ms", "bwd_ms") if mode in row)
        print(f"  {'x'.join(map(str, a.shape))} {_tile_name(cfg)}: {times}", flush=True)
    return rows


def _tile_name(cfg: dict) -> str:
    kind = "look-back " if cfg["lookback"] else f"copy-engine s{cfg['num_stages']} " if cfg.get("tma") else ""
    return f"{kind}BT{cfg['BT']}/BD{cfg['BD']}/w{cfg['num_warps']}"


def _tile(text: str) -> tuple[int, int]:
    steps, channels = text.lower().split("x")
    return int(steps), int(channels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="lrnn bench scan", description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", action="store_true", help="also time the Triton kernels' tile configurations")
    parser.add_argument("--warps", type=int, nargs="+", default=[4, 8], help="num_warps values the sweep tries")
    parser.add_argument("--lookback", action="store_true", help="the sweep times the look-back kernels instead")
    parser.add_argument("--tiles", type=_tile, nargs="+", help="the sweep's tiles as BTxBD (default: all)")
    parser.add_argument(
        "--copy-engine", type=int, nargs="+", metavar="STAGES", help="the sweep times the copy-engine kernels instead"
    )
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], help="only this dtype's shapes (float16: bfloat16's)"
    )
    add_config_argument(parser, "BT=32 (both directions) or bwd.tma=1 bwd.num_stages=2 (one)")
    parser.add_argument("--profile", action="store_true", help="also list the kernels of each forward+backward")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("lrnn bench scan needs a CUDA GPU; the CPU runs the kernels only under the interpreter")
    entries = config_entries(args.config)
    override_config(entries)

    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device)
    report = {
        **environment(device),
        "copy_bandwidth_TBps": bandwidth / 1e12,
        "config": entries,
        "results": [],
        "sweep": [],
    }
    print(f"{report['gpu']}: device-to-device copy {bandwidth / 1e12:.2f} TB/s (read + write)")
    for shape, dtype in shapes_of(args.dtype):
        a, x, dh = scan_inputs(shape, dtype, device)
        ours, peer, floors = time_ours(a, x, dh), time_fla(a, x, dh), floor_bytes(shape, dtype)
        streams = time_streams(a, x, dh)
        for mode, ms in ours.items():
            floor_ms = floors[mode] / bandwidth * 1e3
            row = {
                "shape": list(shape),
                "dtype": str(dtype).removeprefix("torch."),
                "mode": mode,
                "ms": ms,
                "floor_ms": floor_ms,
                "TBps": floors[mode] / (ms * 1e-3) / 1e12,
                "fraction_of_floor": floor_ms / ms,
                "streams_ms": streams[mode],
                "fraction_of_streams": streams[mode] / ms,
            }
            for name in ("fla_chunk_hgrn", "fla_fused_recurrent_hgrn"):
                if f"{name}_{mode}" in peer:
                    row[f"{name}_ms"] = peer[f"{name}_{mode}"]
                    row[f"speedup_vs_{name}"] = peer[f"{name}_{mode}"] / ms
            report["results"].append(row)
        if args.profile:
            name = f"{'x'.join(map(str, shape))} {str(dtype).removeprefix('torch.')}"
            print(f"{name}: the forward+backward's kernels")
            report.setdefault("profile", {})[name] = kernel_times(scan_fwd_bwd(a, x, dh))
            for row in report["profile"][name][:8]:
                print(f"  {row['ms']:8.3f}  x{row['calls']:<4g} {row['kernel'][:100]}")
        if args.sweep:
            for row in sweep_configs(a, x, dh, args.warps, args.lookback, args.tiles, args.copy_engine):
                report["sweep"].append({"shape": list(shape), "dtype": str(dtype).removeprefix("torch."), **row})
        del a, x, dh
        torch.cuda.empty_cache()

    print_table(report)
    write_report(report, "scan", args.out)
    return report


def print_table(report: dict) -> None:
    columns = f"{'shape':>16} {'dtype':>8} {'mode':>8} {'ms':>8} {'floor':>8} {'TB/s':>6} {'%floor':>7}"
    print(f"{columns} {'streams':>8} {'%streams':>8} {'fla chunk':>10} {'x':>6}")
    for r in report["results"]:
        fla = r.get("fla_chunk_hgrn_ms")
        fla_cols = f"{fla:10.3f} {r['speedup_vs_fla_chunk_hgrn']:6.2f}" if fla else f"{'-':>10} {'-':>6}"
        shape = "x".join(map(str, r["shape"]))
        print(
            f"{shape:>16} {r['dtype']:>8} {r['mode']:>8} {r['ms']:8.3f} {r['floor_ms']:8.3f} "
            f"{r['TBps']:6.2f} {100 * r['fraction_of_floor']:6.1f}% {r['streams_ms']:8.3f} "
            f"{100 * r['fraction_of_streams']:7.1f}% {fla_cols}"
        )
    if report["sweep"]:
        print("best tile configurations (kernel only):")
        for (shape, dtype), rows in itertools.groupby(report["sweep"], key=lambda r: (tuple(r["shape"]), r["dtype"])):
            rows = list(rows)
            for mode in ("fwd_ms", "bwd_ms"):
                best = sorted((r for r in rows if mode in r), key=lambda r: r[mode])[:3]
                summary = ", ".join(f"{_tile_name(r)} {r[mode]:.3f}" for r in best)
                print(f"  {'x'.join(map(str, shape))} {dtype} {mode[:3]}: {summary}")


if __name__ == "__main__":
    main()
