"""The offline SASS reader of benchmarks/kernel_sass.py: loop counts on a hand-made listing, and one property of the
real linear_scan kernels compiled for sm_90 (their in-tile scans run forward)."""

import os
import subprocess
import sys

from lrnn.benchmarks.kernel_sass import loops

LISTING = """
	.section	.text._kernel,"ax",@progbits
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   LDG.E R2, desc[UR4][R4.64] ;
        /*0020*/                   SHFL.BFLY PT, R3, R2, 0x1, 0x1f ;
        /*0030*/               @P0 FFMA R2, R3, R2, R2 ;
        /*0040*/              @!P1 IADD3 R4, P2, R4, 0x4, RZ ;
        /*0050*/               @P1 BRA `(.L_x_0) ;
        /*0060*/                   EXIT ;
	.section	.nv.info._kernel,"",@"SHT_CUDA_INFO"
        /*0000*/ 	.byte	0x04, 0x0a, 0xf8, 0x00, 0x20, 0x00, 0x00, 0x00
        /*0010*/ 	.byte	0x04, 0x0a, 0xf8, 0x00, 0x20, 0x00, 0x00, 0x00
        /*0020*/ 	.dword	_kernel
        /*0030*/ 	.byte	0x04, 0x0a, 0xf8, 0x00, 0x20, 0x00, 0x00, 0x00
"""


def test_loops_count_instructions_only():
    """The data sections' lines share the code's addresses; they are not instructions of the loop."""
    (loop,) = loops(LISTING)
    assert loop["instructions"] == 5 and loop["SHFL"] == 1 and loop["LDG"] == 1


SHUFFLES = """
from lrnn.benchmarks.kernel_sass import compile_for_sm90, compile_report, signature
from lrnn.core.scan.linear import triton as face
pointers = {name: "*fp32" for name in ("h0_ptr", "ht_ptr", "dh0_ptr", "dht_ptr")}
kernels = (
    (face._linear_scan_fwd_kernel, {"HAS_H0": False, "STORE_HT": True, "h0_ptr": None}),
    (face._linear_scan_bwd_kernel, {"HAS_H0": False, "HAS_DHT": False, "h0_ptr": None, "dht_ptr": None}),
)
for kernel, flags in kernels:
    for reverse in (False, True):
        constexprs = {"BT": 32, "BD": 32, "ACC": face.tl.float32, "REVERSE": reverse, "IS_COMPLEX": False, **flags}
        types = signature(kernel, constexprs, pointers, "*bf16")
        report = compile_report(compile_for_sm90(kernel, types, constexprs, 1, ("T", "D")))
        print(max(loop["SHFL"] for loop in report["loops"]))
"""


def test_linear_scan_tiles_scan_forward_whatever_the_direction():
    """Triton 3.6's ``associative_scan(reverse=True)`` takes 3.4 times the shuffles of a forward scan on sm_90; the
    kernels visit reversed tiles with their rows reversed instead, so all four (forward and backward, either
    direction) shuffle alike. Compiled in a subprocess with ``TRITON_INTERPRET`` unset."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", SHUFFLES], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    shuffles = [int(line) for line in done.stdout.split()]
    assert len(shuffles) == 4 and max(shuffles) == min(shuffles), shuffles


SELECTIVE_FORWARDS = """
from lrnn.benchmarks.kernel_sass import compile_report, compile_spec, selective_scan_kernels
for spec in selective_scan_kernels():
    if "fwd" in spec.name:
        report = compile_report(compile_spec(spec))
        loop = max(report["loops"], key=lambda loop: loop["instructions"])
        print(spec.name.split(" BD")[0], loop["instructions"], loop["SHFL"], report["stack"], sep="|")
"""


def test_selective_forward_loops_exchange_nothing_between_lanes():
    """The selective forwards keep per-channel values in the state tile's layout (v2.3; the N = 1 tile kernels keep
    a channel's steps in one lane): no loop shuffles or spills, and the time split's first pass, which writes no
    output, runs a shorter loop than its second (at N = 16, and at N = 1 where the loads are issued a step ahead).
    Compiled for sm_90 in a subprocess with ``TRITON_INTERPRET`` unset."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", SELECTIVE_FORWARDS], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {
        name: [int(x) for x in rest] for name, *rest in (line.split("|") for line in done.stdout.split("\n") if line)
    }
    assert len(rows) == 8 and all(shuffles == 0 and stack == 0 for _, shuffles, stack in rows.values()), rows
    for states in ("", " N=1"):
        first, second = (rows[f"selective fwd pieces, {which} pass{states}"][0] for which in ("first", "second"))
        assert first < second, rows


TILE_SHUFFLES = """
from lrnn.benchmarks.kernel_sass import compile_report, compile_spec, selective_scan_kernels
for spec in selective_scan_kernels():
    if "N=1, tiles" in spec.name:
        report = compile_report(compile_spec(spec))
        steps = spec.constexprs.get("TILE", spec.constexprs["BT"])
        print(spec.name.split()[1], steps, max(loop["SHFL"] for loop in report["loops"]))
"""


def test_single_state_tiles_scan_in_registers():
    """At N = 1 the tile kernels keep each lane's steps in its registers, so their scans over time (the backward's
    flipped one included) take no shuffle: the forward's tile loops (checkpointing and not) have none, the
    backward's only the sums of ``dB`` and ``dC`` over a step's channels (5 each a step within a warp) and at most
    one more each to lay the sums out for their store (a reverse scan over the tile, in Triton 3.6, adds 20 a step).
    Compiled in a subprocess with ``TRITON_INTERPRET`` unset."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", TILE_SHUFFLES], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [(kind, int(steps), int(shuffles)) for kind, steps, shuffles in map(str.split, done.stdout.splitlines())]
    assert len(rows) == 3, done.stdout
    for kind, steps, shuffles in rows:
        assert shuffles <= (0 if kind == "fwd" else 2 * (5 + 1) * steps), done.stdout
