"""Kernel tests: every allocation starts as NaN, so an output a kernel forgets to write fails."""

import os
import subprocess
import sys

import pytest


@pytest.fixture(autouse=True)
def _poison_allocations(nan_poisoned_empty):
    """Applies ``nan_poisoned_empty`` (tests/conftest.py) to every test here."""


COMPILE_FOR_H100 = """
import ast
import sys
from lrnn.benchmarks import kernel_sass
specs, channels, dtypes = getattr(kernel_sass, sys.argv[1]), *map(ast.literal_eval, sys.argv[2:4])
for width in channels:
    for dtype in dtypes:
        for spec in specs(width, dtype):
            try:
                kernel_sass.compile_spec(spec, default_pointer="*" + dtype)
            except Exception as error:
                print(spec.name, width, dtype, type(error).__name__)
"""


@pytest.fixture
def compiles_for_the_h100():
    """``check(kernels, channels, dtypes)``: every ``KernelSpec`` that ``kernel_sass.<kernels>(C, dtype)`` lists
    compiles for sm_90 as a launch there specialises it (aligned pointers, ``C`` a multiple of 16), which the
    interpreter cannot show. A subprocess, because the kernels are compiled only with ``TRITON_INTERPRET`` unset."""

    def check(kernels: str, channels: tuple[int, ...], dtypes: tuple[str, ...]) -> None:
        env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
        args = [sys.executable, "-c", COMPILE_FOR_H100, kernels, repr(channels), repr(dtypes)]
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout == "", f"failed to compile for sm_90:\n{done.stdout}"

    return check
