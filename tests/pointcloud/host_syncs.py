"""Counting, on any device, the operations that make the host wait for a CUDA device (a test helper).

On CUDA every device-to-host read, and every blocking host-to-device copy, waits until the stream drains (PyTorch's
``memcpy_and_sync``), so the GPU idles while the host launches what follows. The same operations run on the CPU
without a wait, but they pass through the same aten ops, so counting those ops on the CPU counts the waits a CUDA
run would have:

* ``_local_scalar_dense``: ``.item()``, ``int(t)``, ``float(t)``, ``bool(t)``, ``if t:``;
* ``nonzero`` (also ``torch.where(cond)``, ``argwhere``), ``masked_select``, ``masked_scatter``, and ``index`` /
  ``index_put_`` with a boolean mask (``x[mask]``, ``x[mask] = y``);
* ``unique`` in all its forms; ``repeat_interleave`` without ``output_size``; ``bincount`` (its CUDA kernel reads
  the input's min and max on the host whatever ``minlength``); ``equal``;
* ``lift_fresh``: a tensor made from Python data (``torch.tensor``, ``new_tensor``), a blocking copy onto the GPU;
* ``tolist``, ``numpy``, ``cpu`` and ``to`` the CPU (blocking): no aten op on CPU tensors, so a function mode sees
  them.

``HostSyncCounter`` enters a ``TorchDispatchMode`` and a ``TorchFunctionMode`` that count these by op name and by
call site: the innermost frame of this repository's code (``pointcloud/backbone/merge.py:39 (merge_voxels)``),
outside torch and third-party packages; a sync reached through spconv counts as ``spconv`` (its own business).
"""

import sys
import traceback
from collections import Counter
from pathlib import Path

import torch
from lrnn.pointcloud import __file__ as _pointcloud_init
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

REPO_ROOT = Path(_pointcloud_init).resolve().parents[1]
IN_SCOPE = "pointcloud/"
SPCONV_SITE = "spconv"
_HERE = str(Path(__file__).resolve())
_PACKAGES = ("site-packages", "dist-packages")
_SPCONV_PACKAGES = ("spconv", "spconv_triton")

aten = torch.ops.aten
_ALWAYS = {
    aten._local_scalar_dense.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten.masked_scatter.default,
    aten.masked_scatter_.default,
    aten._unique.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.unique_dim_consecutive.default,
    aten.bincount.default,
    aten.equal.default,
    aten.lift_fresh.default,
}
_MASK_INDEXED = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}
_REPEAT_INTERLEAVE = {aten.repeat_interleave.Tensor, aten.repeat_interleave.self_Tensor}
_HOST_COPIES = {"tolist", "numpy", "cpu"}


def _is_mask(index: object) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def dispatch_sync_name(func, args: tuple, kwargs: dict) -> str | None:
    """The name to count an aten op under when it syncs on CUDA, else None."""
    name = func.name().removeprefix("aten::")
    if func in _ALWAYS:
        return name
    if func in _MASK_INDEXED and any(_is_mask(index) for index in args[1]):
        return f"{name} (boolean mask)"
    if func in _REPEAT_INTERLEAVE and kwargs.get("output_size") is None:
        return f"{name} (no output_size)"
    return None


def _to_cpu(args: tuple, kwargs: dict) -> bool:
    """Whether ``Tensor.to(*args, **kwargs)`` is a blocking copy to the CPU."""
    if kwargs.get("non_blocking") or any(arg is True for arg in args[2:]):
        return False
    device = kwargs.get("device", args[1] if len(args) > 1 else None)
    return isinstance(device, str | torch.device) and torch.device(device).type == "cpu"


def function_sync_name(func, args: tuple, kwargs: dict) -> str | None:
    """The name to count a host copy invisible to the dispatcher on CPU tensors under, else None."""
    name = getattr(func, "__name__", "")
    if name in _HOST_COPIES or (name == "to" and _to_cpu(args, kwargs)):
        return name
    return None


def call_site() -> str:
    """``path:line (function)`` of the innermost frame of this repository's code outside this helper, ``spconv``
    for a call made inside spconv, or ``elsewhere``."""
    for frame, line in traceback.walk_stack(sys._getframe(1)):
        path = Path(frame.f_code.co_filename)
        parts = path.parts
        if any(package in parts for package in _PACKAGES):
            if any(package in parts for package in _SPCONV_PACKAGES):
                return SPCONV_SITE
            continue
        if str(path) != _HERE and path.is_relative_to(REPO_ROOT):
            return f"{path.relative_to(REPO_ROOT)}:{line} ({frame.f_code.co_name})"
    return "elsewhere"


class _DispatchCounter(TorchDispatchMode):
    def __init__(self, record) -> None:
        super().__init__()
        self.record = record

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = dispatch_sync_name(func, args, kwargs)
        if name is not None:
            self.record(name)
        return func(*args, **kwargs)


class _FunctionCounter(TorchFunctionMode):
    def __init__(self, record) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = function_sync_name(func, args, kwargs)
        if name is not None:
            self.record(name)
        return func(*args, **kwargs)


class HostSyncCounter:
    """``with HostSyncCounter() as syncs: model(batch)``; then ``syncs.counts`` maps ``(site, op)`` to a count,
    ``syncs.total(IN_SCOPE)`` sums the sites under a folder and ``syncs.table()`` lists them all."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._modes = (_FunctionCounter(self._record), _DispatchCounter(self._record))

    def _record(self, name: str) -> None:
        self.counts[call_site(), name] += 1

    def __enter__(self) -> "HostSyncCounter":
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)

    def total(self, prefix: str = IN_SCOPE) -> int:
        """Syncs counted at the sites under ``prefix`` (a repository path)."""
        return sum(count for (site, _), count in self.counts.items() if site.startswith(prefix))

    def table(self) -> str:
        """One line per (site, op), sites in order, with their count."""
        rows = [(site, name, str(count)) for (site, name), count in sorted(self.counts.items())]
        rows.append(("total", "", str(sum(self.counts.values()))))
        widths = [max(len(row[column]) for row in rows) for column in range(2)]
        return "\n".join(f"{site:<{widths[0]}}  {name:<{widths[1]}}  {count:>5}" for site, name, count in rows)
