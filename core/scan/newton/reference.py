"""The definition of ``newton_scan``: the sequential loop ``z_t = f(z_{t-1}, x_t)``, the oracle for its tests."""

import torch

from .newton import NewtonScanInfo, check_newton_inputs, step_inputs


def newton_scan_reference(
    f, z0: torch.Tensor, x: torch.Tensor | tuple[torch.Tensor, ...] | None = None, *, steps: int | None = None
) -> tuple[torch.Tensor, NewtonScanInfo]:
    """``z_t = f(z_{t-1}, x_t)`` one step at a time, ``t = 1 .. T``, from ``z0``.

    Takes the same ``f``, ``z0``, ``x`` and ``steps`` as ``newton_scan`` and returns ``(z [B, T, M], info)`` with
    ``info.iterations == 0`` (no Newton step is taken) and ``info.residual == 0.0``. Differentiable by autograd.
    """
    steps = check_newton_inputs(f, z0, x, steps)
    z, outputs = z0, []
    for t in range(steps):
        z = f(z, step_inputs(x, t))
        outputs.append(z)
    return torch.stack(outputs, 1), NewtonScanInfo(iterations=0, residual=0.0, converged=True)
