"""Test-wide setup.

* ``TRITON_INTERPRET=1`` is set before anything imports Triton when no GPU is present, so the Triton
  kernels run (slowly, at small sizes) on the CPU.
* ``nan_poisoned_empty``: every ``torch.empty``/``empty_like``/``Tensor.new_empty`` made during a test starts as
  NaN, so an output a kernel forgets to write fails; the kernel test folders use it for every test.
* ``one_torch_thread`` (module scope): torch on one intra-op thread for a test module, restored after; the
  folders of small models use it (on a busy 2-core machine a second thread only makes them wait).
* ``compiled_matches_eager``: checks that ``torch.compile(fullgraph=True)`` of a module gives eager's loss and
  gradients (the custom-op tests of every primitive use it).
* Tests marked ``gpu`` are skipped without CUDA, and ``slow`` ones unless ``LRNN_RUN_SLOW=1``; the summary
  line says how many were skipped and why.
* ``device``: the GPU when there is one, else the CPU. Tests that take it (they run a Triton face) are marked
  ``kernel``: ``pytest -m "gpu or kernel"`` is the GPU machine's run (benchmarks/gpu_run.sh).
"""

import os

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    # Must happen before any lrnn module defines a @triton.jit kernel.
    os.environ.setdefault("TRITON_INTERPRET", "1")


_empty, _empty_like, _new_empty = torch.empty, torch.empty_like, torch.Tensor.new_empty


def _poisoned(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point() or t.is_complex():
        t.fill_(float("nan"))
    return t


@pytest.fixture
def device() -> torch.device:
    """Where the Triton faces run: the GPU when there is one, else the CPU (under the interpreter)."""
    return torch.device("cuda" if HAS_CUDA else "cpu")


@pytest.fixture
def nan_poisoned_empty(monkeypatch):
    """Allocations made during the test start as NaN."""
    monkeypatch.setattr(torch, "empty", lambda *args, **kwargs: _poisoned(_empty(*args, **kwargs)))
    monkeypatch.setattr(torch, "empty_like", lambda *args, **kwargs: _poisoned(_empty_like(*args, **kwargs)))
    monkeypatch.setattr(
        torch.Tensor, "new_empty", lambda self, *args, **kwargs: _poisoned(_new_empty(self, *args, **kwargs))
    )


@pytest.fixture(scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def compiled_matches_eager():
    """``check(model, inputs, leaves)``: ``torch.compile(model, fullgraph=True, backend="aot_eager")`` traces
    without graph breaks and gives eager's scalar output and gradients with respect to ``leaves``."""

    def check(model: torch.nn.Module, inputs: tuple, leaves: list[torch.Tensor]) -> None:
        torch._dynamo.reset()
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        loss = compiled(*inputs)
        grads = torch.autograd.grad(loss, leaves)
        eager = model(*inputs)
        grads_eager = torch.autograd.grad(eager, leaves)
        torch.testing.assert_close(loss, eager)
        for got, want in zip(grads, grads_eager, strict=True):
            torch.testing.assert_close(got, want)

    return check


def pytest_collection_modifyitems(config, items):
    run_slow = os.environ.get("LRNN_RUN_SLOW") == "1"
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (run on the H100 through the device tool)")
    skip_slow = pytest.mark.skip(reason="slow; set LRNN_RUN_SLOW=1 to run")
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kernel)
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


def pytest_terminal_summary(terminalreporter):
    if not HAS_CUDA:
        skipped = len(terminalreporter.stats.get("skipped", []))
        terminalreporter.write_line(
            f"lrnn: no CUDA device here; GPU tests skipped, Triton kernels ran under TRITON_INTERPRET=1 "
            f"({skipped} tests skipped in all)"
        )
