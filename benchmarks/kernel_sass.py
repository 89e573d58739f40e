"""Compile the scan kernels for the H100 (sm_90) without a GPU and report what their loops run.

Triton compiles to a cubin on any machine (its bundled ``ptxas``); ``cuobjdump`` gives the registers, stack
(spills) and shared memory per thread, and ``nvdisasm`` the SASS, whose backward branches mark the loops. For each
loop the report gives its instruction count and the instructions that matter here: ``MUFU`` (exponentials and
other special functions), ``SHFL`` (cross-lane exchange), ``LDG``/``STG`` (global memory), ``LDS``/``STS``/``BAR``
(shared memory: layout conversions, dot operands), ``HMMA``/``HGMMA`` (tensor-core steps, warp or warpgroup).
Kernels are compiled for bfloat16 inputs with their ``launch_config`` at the benchmarks' sizes. Counts are a
proxy, not a timing: they show a kernel bound by instruction issue, or spilling registers, before any GPU run
(benchmarks/NOTES.md).

    python -m lrnn.benchmarks.kernel_sass                       # every op
    python -m lrnn.benchmarks.kernel_sass --ops chunk_gla
"""

import argparse
import collections
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from typing import NamedTuple

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

TOOLS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
COUNTED = ("MUFU", "SHFL", "LDG", "STG", "LDS", "STS", "BAR", "HMMA", "HGMMA")
ADDRESS = re.compile(r"/\*([0-9a-f]{4,})\*/")
OPCODE = re.compile(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9]+)")


def signature(kernel, constexprs: dict, pointers: dict[str, str], default_pointer: str) -> dict[str, str]:
    """Triton's signature of ``kernel``: constexpr parameters (and absent pointers, given as None in
    ``constexprs``) as "constexpr", pointers from ``pointers`` or ``default_pointer``, tensor descriptors
    (``*_desc``) from ``pointers``, ``scale`` and ``eps`` fp32, the rest i32."""
    types = {}
    for param in kernel.params:
        name = param.name
        if param.is_constexpr or name in constexprs:
            types[name] = "constexpr"
        elif name.endswith("_ptr"):
            types[name] = pointers.get(name, default_pointer)
        elif name.endswith("_desc"):
            types[name] = pointers[name]
        else:
            types[name] = "fp32" if name in ("scale", "eps") else "i32"
    return types


def _tool(name: str, *args: str) -> str:
    return subprocess.run([os.path.join(TOOLS, name), *args], capture_output=True, text=True, check=True).stdout


def is_instruction(line: str) -> bool:
    """A SASS instruction line: an address and an opcode (the listing's data sections have addresses too, from 0,
    overlapping the code's: counting them inflated every count made before session 4)."""
    return ADDRESS.search(line) is not None and OPCODE.search(line) is not None


def loops(sass: str) -> list[dict]:
    """The loops of a SASS listing, smallest first: instruction count and the ``COUNTED`` ones."""
    label_address, pending, instructions = {}, None, []
    for line in sass.splitlines():
        label = re.match(r"\s*(\.L_x_\d+):", line)
        if label:
            pending = label.group(1)
            continue
        if is_instruction(line):
            address = ADDRESS.search(line)
            offset = int(address.group(1), 16)
            if pending:
                label_address[pending], pending = offset, None
            instructions.append((offset, line))
    found = []
    for offset, line in instructions:
        branch = re.search(r"BRA `\((\.L_x_\d+)\)", line)
        if branch and label_address.get(branch.group(1), offset) < offset:
            body = [text for at, text in instructions if label_address[branch.group(1)] <= at <= offset]
            ops = collections.Counter(match.group(1) for text in body if (match := OPCODE.search(text)))
            found.append({"instructions": len(body), **{name: ops[name] for name in COUNTED}})
    return sorted(found, key=lambda loop: loop["instructions"])


def compile_for_sm90(
    kernel,
    types: dict,
    constexprs: dict,
    num_warps: int,
    divisible: tuple[str, ...] = (),
    num_stages: int | None = None,
):
    """``kernel`` compiled for the H100 as a launch there would: every pointer 16-byte aligned (torch's
    allocations are) and the integer parameters named in ``divisible`` multiples of 16 (Triton specialises on both,
    and some bugs appear only then); ``num_stages`` None keeps Triton's default pipelining."""
    aligned = [["tt.divisibility", 16]]
    attrs = {
        (index,): aligned
        for index, name in enumerate(kernel.arg_names)
        if types.get(name, "").startswith("*") or name in divisible
    }
    return triton.compile(
        ASTSource(fn=kernel, signature=types, constexprs=constexprs, attrs=attrs),
        target=GPUTarget("cuda", 90, 32),
        options={"num_warps": num_warps} | ({} if num_stages is None else {"num_stages": num_stages}),
    )


def compile_report(compiled) -> dict:
    """Registers, stack bytes, shared bytes, total instructions and loops of a kernel ``compiled`` for sm_90."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        usage = _tool("cuobjdump", "--dump-resource-usage", cubin.name)
        sass = _tool("nvdisasm", cubin.name)
    resources = dict(re.findall(r"(REG|STACK|SHARED):(\d+)", usage))
    return {
        "registers": int(resources["REG"]),
        "stack": int(resources["STACK"]),
        "shared": compiled.metadata.shared,
        "instructions": sum(1 for line in sass.splitlines() if is_instruction(line)),
        "loops": loops(sass),
    }


class KernelSpec(NamedTuple):
    """One kernel to compile: its report name, the ``@triton.jit`` function, its constexpr values, the pointer
    types that are not ``*bf16``, its warps, the integer parameters that are multiples of 16 at this size, and its
    pipelining stages where its launch sets them."""

    name: str
    kernel: object
    constexprs: dict
    pointers: dict
    num_warps: int
    divisible: tuple[str, ...] = ()
    num_stages: int | None = None


def compile_spec(
    spec: KernelSpec, num_warps: int | None = None, num_stages: int | None = None, default_pointer: str = "*bf16"
):
    """``spec``'s kernel compiled for sm_90 at its own warps and stages unless ``num_warps`` or ``num_stages`` is
    given, its pointers not named in the spec of type ``default_pointer``."""
    types = signature(spec.kernel, spec.constexprs, spec.pointers, default_pointer)
    warps, stages = num_warps or spec.num_warps, num_stages or spec.num_stages
    return compile_for_sm90(spec.kernel, types, spec.constexprs, warps, spec.divisible, stages)


def selective_scan_kernels() -> list[KernelSpec]:
    """The selective_scan kernels at N = 16 (the forward that checkpoints, the one that does not, the time split's
    two passes, and the backward, each at its own ``launch_config``), the time split's two forward passes at N = 1
    (VMamba's routes, where the step loop prefetches), and the N = 1 tile kernels (``single_state.py``, forward and
    backward at their default tiles, ``T`` a multiple of the tile), at D = 768.
    Before session 10 they compiled without the GPU's specialisation of ``D`` and ``N``, so the ``B_t``, ``C_t``
    loads were scalar (35 ``LDG`` a step instead of 7) and every count in NOTES before then is high."""
    from lrnn.core.scan.selective import single_state
    from lrnn.core.scan.selective import triton as face

    flags = {"HAS_D": True, "HAS_Z": True, "HAS_BIAS": True, "SOFTPLUS": True, "REVERSE": False}
    pointers = {name: "*fp32" for name in ("a_ptr", "d_ptr", "bias_ptr", "h0_ptr", "ht_ptr", "hs_ptr", "dt_sum_ptr",
                                          "da_ptr", "db_ptr", "dc_ptr", "dd_ptr", "dbias_ptr", "dh0_ptr",
                                          "scratch_ptr")}  # fmt: skip
    readout = {"WRITE_Y": True, "SUM_DT": False, "dt_sum_ptr": None}
    no_start = {"HAS_H0": False, "h0_ptr": None}
    pieces = {"SAVE_STATES": False, "hs_ptr": None}
    first = {**no_start, **pieces, "WRITE_Y": False, "y_ptr": None, "SUM_DT": True, "HAS_D": False, "d_ptr": None,
             "HAS_Z": False, "z_ptr": None}  # fmt: skip
    second = {**readout, **pieces, "HAS_H0": True}
    kernels = []
    for name, direction, state_size, kernel, extra in (
        ("fwd", "fwd", 16, face._selective_fwd_kernel, {**readout, **no_start, "SAVE_STATES": True}),
        ("fwd inference", "fwd", 16, face._selective_fwd_kernel, {**readout, **no_start, **pieces}),
        ("fwd pieces, first pass", "pieces", 16, face._selective_fwd_kernel, first),
        ("fwd pieces, second pass", "pieces", 16, face._selective_fwd_kernel, second),
        ("fwd pieces, first pass N=1", "pieces", 1, face._selective_fwd_kernel, first),
        ("fwd pieces, second pass N=1", "pieces", 1, face._selective_fwd_kernel, second),
        ("bwd", "bwd", 16, face._selective_bwd_kernel, {"dht_ptr": None, "HAS_DHT": False, "EVEN": True}),
    ):
        config = face.launch_config(768, 1, state_size, direction, saves_states=extra.get("SAVE_STATES", False))
        constexprs = {key: value for key, value in face.step_loop(config).items() if key != "num_warps"} | flags | extra
        # as the GPU specialises them: D = 768 a multiple of 16, and N = 16 too, or N = 1 a constant
        divisible = ("D", "N") if state_size % 16 == 0 else ("D",)
        if state_size == 1:
            constexprs["N"] = 1
        kernels.append(
            KernelSpec(
                f"selective {name} BD={config['BD']}", kernel, constexprs, pointers, config["num_warps"], divisible
            )
        )
    inference = {**no_start, "SAVE_STATES": False, "hs_ptr": None}
    for name, direction, kernel, extra in (
        ("fwd", "fwd", single_state._selective_fwd_single_state_kernel, {**no_start, "SAVE_STATES": True}),
        ("fwd inference", "fwd", single_state._selective_fwd_single_state_kernel, inference),
        ("bwd", "bwd", single_state._selective_bwd_single_state_kernel, {"dht_ptr": None, "HAS_DHT": False}),
    ):
        config = face.launch_config(768, 4, 1, direction, saves_states=extra.get("SAVE_STATES", False))
        tile = config.get("TILE", config["BT"])
        name = (
            f"selective {name} N=1, tiles of {tile} steps, checkpoints every {config['BT']}, BD={config['BD']}, "
            f"{config['num_warps']} warp(s)"
        )
        constexprs = {"BT": config["BT"], "BD": config["BD"], "EVEN": True, "FAST": True} | flags | extra
        if "TILE" in config:
            constexprs["TILE"] = config["TILE"]
        kernels.append(KernelSpec(name, kernel, constexprs, pointers, config["num_warps"], ("D",)))
    return kernels


def chunk_gla_kernels() -> list[KernelSpec]:
    """The chunk_gla kernels, per-key gates, K = V = 128, bf16 inputs (float32 ``G``, ``A``, ``dg`` and the
    backward's states; the forward's states and its output kernel's dot operands bf16)."""
    import torch
    from lrnn.core.scan.gla import triton as face

    config = face.launch_config(128, 128)
    tiles = {"BT": config["BT"], "BC": config["BC"], "BK": config["BK"], "BV": config["BV"]}
    common = {"PER_KEY": True, "REVERSE": False, "PRECISION": "tf32", "IS_VARLEN": False}
    common |= {"cu_ptr": None, "chunk_ptr": None, "offs_ptr": None}
    pointers = {
        name: "*fp32"
        for name in (
            "gc_ptr",
            "h_ptr",
            "ht_ptr",
            "h0_ptr",
            "dh_ptr",
            "dh0_ptr",
            "dg_ptr",
            "a_ptr",
            "da_ptr",
            "dqi_ptr",
            "dki_ptr",
        )
    }
    pointers["g_ptr"] = "*bf16"
    forward_states = {**pointers, "h_ptr": "*bf16"}
    rounded, operand = face.dot_dtypes(torch.bfloat16, torch.device("cuda"))
    output_tiles = {**tiles, "BV": config["BV_O"], "ROUNDED": rounded, "OPERAND": operand}
    specs = [
        ("cumsum", face._cumsum_kernel, {"BT": config["BT"], "BK": config["BK"], **common}, pointers),
        ("fwd_h", face._fwd_h_kernel, {**tiles, **common, "HAS_H0": False, "h0_ptr": None}, forward_states),
        ("fwd_h (bwd)", face._fwd_h_kernel, {**tiles, **common, "HAS_H0": False, "h0_ptr": None}, pointers),
        ("fwd_a", face._fwd_a_kernel, {**tiles, **common}, pointers),
        ("fwd_o", face._fwd_o_kernel, {**output_tiles, **common}, forward_states),
        ("bwd_dh", face._bwd_dh_kernel, {**tiles, **common, "HAS_DHT": False, "dht_ptr": None}, pointers),
        ("bwd_dv", face._bwd_dv_kernel, {**output_tiles, **common}, pointers),
        ("bwd_da", face._bwd_da_kernel, {**tiles, **common}, pointers),
        ("bwd_dqk_intra", face._bwd_dqk_intra_kernel, {**tiles, **common}, pointers),
        ("bwd_dqkg", face._bwd_dqkg_kernel, {**tiles, **common, "ROUNDED": rounded, "OPERAND": operand}, pointers),
    ]
    kernels = []
    for name, kernel, constexprs, kinds in specs:
        used = {key: value for key, value in constexprs.items() if key in kernel.arg_names}
        launch = face.kernel_launch(config, kernel)
        kernels.append(
            KernelSpec(f"chunk_gla {name}", kernel, used, kinds, launch["num_warps"], (), launch.get("num_stages"))
        )
    return kernels


def linear_scan_kernels() -> list[KernelSpec]:
    """The linear_scan kernels on real bf16 inputs at 8 x 4096 x 4096 (the bf16 rows of the README; ``T`` and ``D``
    multiples of 16, as the GPU specialises them), the copy-engine forward at 32 and 16 channels a tile, and its
    backward at 32."""
    import torch
    from lrnn.core.scan.linear import copy_engine, lookback
    from lrnn.core.scan.linear import triton as face

    flags = {"REVERSE": False, "IS_COMPLEX": False}
    pointers = {name: "*fp32" for name in ("h0_ptr", "ht_ptr", "dh0_ptr", "dht_ptr")}
    kernels = []
    for direction, kernel, extra in (
        ("fwd", face._linear_scan_fwd_kernel, {"HAS_H0": False, "STORE_HT": True, "h0_ptr": None}),
        ("bwd", face._linear_scan_bwd_kernel, {"HAS_H0": False, "HAS_DHT": False, "h0_ptr": None, "dht_ptr": None}),
    ):
        config = face.launch_config(8, 4096, torch.bfloat16, direction)
        constexprs = {"BT": config["BT"], "BD": config["BD"], "ACC": face.tl.float32, **flags, **extra}
        name = f"linear {direction} BT={config['BT']} BD={config['BD']}"
        kernels.append(KernelSpec(name, kernel, constexprs, pointers, config["num_warps"], ("T", "D")))
    pointers |= {"ticket_ptr": "*i32", "flag_ptr": "*i32", "aggregate_ptr": "*fp32", "inclusive_ptr": "*fp32"}
    for direction, kernel, extra in (
        ("fwd", lookback._lookback_fwd_kernel, {"HAS_H0": False, "h0_ptr": None}),
        ("bwd", lookback._lookback_bwd_kernel, {"HAS_H0": False, "HAS_DHT": False, "h0_ptr": None, "dht_ptr": None}),
    ):
        config = face.LOOKBACK_TILES[direction]
        constexprs = {"BT": config["BT"], "BD": config["BD"], "ACC": face.tl.float32, "REVERSE": False, **extra}
        name = f"look-back {direction} BT={config['BT']} BD={config['BD']}"
        kernels.append(KernelSpec(name, kernel, constexprs, pointers, config["num_warps"], ("T", "D")))
    for block_d in (32, 16):
        descriptors = {name: f"tensordesc<bf16[1,64,{block_d}]>" for name in ("a_desc", "x_desc", "h_desc")}
        constexprs = {"BT": 64, "BD": block_d, "STAGES": 3, "HAS_H0": False, "h0_ptr": None, "ACC": face.tl.float32}
        name = f"copy-engine fwd BT=64 BD={block_d} stages=3"
        kernel = copy_engine._copy_engine_fwd_kernel
        kernels.append(KernelSpec(name, kernel, constexprs, pointers | descriptors, 1, ("D",)))
    streams = ("a_desc", "h_desc", "dh_desc", "dx_desc", "da_desc")
    descriptors = {name: "tensordesc<bf16[1,64,32]>" for name in streams} | {"a_ptr": "*bf16"}
    constexprs = {"BT": 64, "BD": 32, "STAGES": 2, "HAS_H0": False, "HAS_DHT": False, "h0_ptr": None,
                  "dht_ptr": None, "ACC": face.tl.float32}  # fmt: skip
    kernel = copy_engine._copy_engine_bwd_kernel
    kernels.append(
        KernelSpec("copy-engine bwd BT=64 BD=32 stages=2", kernel, constexprs, pointers | descriptors, 1, ("D",))
    )
    return kernels


def window_gather_kernels(channels: int = 128, dtype: str = "bf16") -> list[KernelSpec]:
    """The row gather and its segment-sum backward at ``channels`` (LION's 128 by default), int64 indices."""
    import triton.language as tl
    from lrnn.kernels.window_gather import triton as face

    config = face.launch_config(channels)
    tiles = {"BR": config["BR"], "BC": config["BC"]}
    pointers = {"grad_ptr": f"*{dtype}", "src_ptr": f"*{dtype}", "out_ptr": f"*{dtype}", "index_ptr": "*i64",
                "order_ptr": "*i64", "offsets_ptr": "*i64"}  # fmt: skip
    divisible = ("C",) if channels % 16 == 0 else ()
    accumulate = tl.float64 if dtype == "fp64" else tl.float32
    return [
        KernelSpec("window gather", face._gather_rows_kernel, tiles, pointers, config["num_warps"], divisible),
        KernelSpec(
            "window segment sum",
            face._segment_sum_kernel,
            {**tiles, "ACC": accumulate},
            pointers,
            config["num_warps"],
            divisible,
        ),  # fmt: skip
    ]


def layer_norm_kernels(channels: int = 96, dtype: str = "bf16") -> list[KernelSpec]:
    """The LayerNorm forward and backward at ``channels`` (VMamba-T's first stage by default), with both
    parameters, and the RMSNorm forward with a weight (Vim's)."""
    from lrnn.kernels.layer_norm import triton as face

    config = face.launch_config(channels)
    constexprs = {"BM": config["BM"], "BC": config["BC"], "HAS_W": True, "HAS_B": True, "RMS": False}
    pointers = {"x_ptr": f"*{dtype}", "dy_ptr": f"*{dtype}", "dx_ptr": f"*{dtype}", "y_ptr": f"*{dtype}",
                "w_ptr": "*fp32", "b_ptr": "*fp32", "mean_ptr": "*fp32", "rstd_ptr": "*fp32", "dw_ptr": "*fp32",
                "db_ptr": "*fp32"}  # fmt: skip
    divisible = ("C",) if channels % 16 == 0 else ()
    rms = constexprs | {"HAS_B": False, "RMS": True}
    return [
        KernelSpec(name, kernel, flags, pointers, config["num_warps"], divisible)
        for name, kernel, flags in (
            ("layer norm fwd", face._layer_norm_fwd_kernel, constexprs),
            ("layer norm bwd", face._layer_norm_bwd_kernel, constexprs),
            ("rms norm fwd", face._layer_norm_fwd_kernel, rms),
        )
    ]


OPS: dict[str, Callable[[], list[KernelSpec]]] = {
    "selective_scan": selective_scan_kernels,
    "chunk_gla": chunk_gla_kernels,
    "linear_scan": linear_scan_kernels,
    "window_gather": window_gather_kernels,
    "layer_norm": layer_norm_kernels,
}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="lrnn bench kernel_sass", description=__doc__.split("\n")[0])
    parser.add_argument("--ops", nargs="+", choices=sorted(OPS), default=sorted(OPS))
    parser.add_argument("--num-warps", type=int, default=None, help="override the launch configs' warps")
    parser.add_argument("--num-stages", type=int, default=None, help="override the launches' pipelining stages")
    args = parser.parse_args(argv)
    rows = []
    header = f"{'kernel':>24} {'regs':>5} {'stack':>5} {'shared':>7} {'instr':>6}"
    print(f"{header}  loops: instructions ({', '.join(COUNTED)})")
    for op in args.ops:
        for spec in OPS[op]():
            report = compile_report(compile_spec(spec, args.num_warps, args.num_stages))
            rows.append({"kernel": spec.name, **report})
            cells = [f"{loop['instructions']} ({' '.join(str(loop[c]) for c in COUNTED)})" for loop in report["loops"]]
            print(
                f"{spec.name:>24} {report['registers']:>5} {report['stack']:>5} {report['shared']:>7} "
                f"{report['instructions']:>6}  " + " | ".join(cells)
            )
    return rows


if __name__ == "__main__":
    main()
