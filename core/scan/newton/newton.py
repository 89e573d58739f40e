"""``newton_scan``: a nonlinear recurrence ``z_t = f(z_{t-1}, x_t)`` solved for all ``t`` at once (DEER, ParaRNN).

Each Newton step linearises every step of the recurrence around the current guess of the trajectory and solves
the resulting linear recurrence with the parallel ``affine_scan``; gradients come from one more linear scan
running backwards (implicit differentiation of the converged trajectory).
"""

import math
import warnings
from typing import NamedTuple

import torch

from .affine import SCANS, affine_scan

Inputs = torch.Tensor | tuple[torch.Tensor, ...] | None


class NewtonScanInfo(NamedTuple):
    """What the solve did: ``iterations`` Newton steps, ``residual = max_t |z_t - f(z_{t-1}, x_t)|`` of the
    returned trajectory, and whether the change of the last step met the tolerance."""

    iterations: int
    residual: float
    converged: bool


def _leaves(x: Inputs) -> tuple[torch.Tensor, ...]:
    return () if x is None else (x,) if isinstance(x, torch.Tensor) else tuple(x)


def _map(x: Inputs, fn) -> Inputs:
    """``fn`` applied to every tensor of ``x`` (None, a tensor, or a tuple of tensors)."""
    if x is None:
        return None
    return fn(x) if isinstance(x, torch.Tensor) else tuple(fn(t) for t in x)


def step_inputs(x: Inputs, t: int) -> Inputs:
    """The inputs of step ``t``: ``x[:, t]`` for every tensor of ``x``."""
    return _map(x, lambda v: v[:, t])


def check_newton_inputs(f, z0: object, x: object, steps: int | None) -> int:
    """Validates the arguments ``newton_scan`` and its reference share; returns the number of steps ``T``."""
    if not callable(f):
        raise TypeError(f"f must be callable as f(z [N, M], x) -> [N, M], got {type(f).__name__}")
    if not isinstance(z0, torch.Tensor):
        raise TypeError(f"z0 must be a torch.Tensor, got {type(z0).__name__}")
    if not z0.is_floating_point():
        raise TypeError(f"z0 must be a real floating-point tensor, got dtype {z0.dtype}")
    if z0.dim() != 2 or z0.numel() == 0:
        raise ValueError(f"z0 must be [batch, M] and non-empty, got shape {tuple(z0.shape)}")
    if x is not None and not isinstance(x, (torch.Tensor, tuple)):
        raise TypeError(f"x must be None, a torch.Tensor or a tuple of tensors, got {type(x).__name__}")
    leaves = _leaves(x)
    for i, leaf in enumerate(leaves):
        name = "x" if isinstance(x, torch.Tensor) else f"x[{i}]"
        if not isinstance(leaf, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(leaf).__name__}")
        if leaf.dim() < 2 or leaf.shape[0] != z0.shape[0]:
            raise ValueError(
                f"{name} must be [batch, T, ...] with batch = {z0.shape[0]} (z0's), got shape {tuple(leaf.shape)}"
            )
        if leaf.device != z0.device:
            raise ValueError(f"{name} is on {leaf.device} but z0 is on {z0.device}")
    lengths = {leaf.shape[1] for leaf in leaves}
    if len(lengths) > 1:
        raise ValueError(f"the tensors of x must share T (dim 1), got {[tuple(v.shape) for v in leaves]}")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not leaves:
        if steps is None:
            raise ValueError("steps is required when x is None (there is nothing to read T from)")
        return steps
    (length,) = lengths
    if length < 1:
        raise ValueError(f"x must have at least one step, got T = {length}")
    if steps is not None and steps != length:
        raise ValueError(f"steps = {steps} disagrees with x's T = {length}")
    return length


def _rows(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])


def _matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (a @ v.unsqueeze(-1)).squeeze(-1)


def _shift(z0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``z_prev [B, T, M]``: ``z0`` then ``z_1 .. z_{T-1}``."""
    return torch.cat([z0.unsqueeze(1), z[:, :-1]], 1)


def _jacobian_by_autograd(f, x_rows: Inputs):
    """``(J [N, M, M], f [N, M])`` at rows ``z [N, M]``: ``jacrev`` of one row of ``f``, ``vmap``-ed over rows."""

    def one_row(z, x_row):
        out = f(z.unsqueeze(0), _map(x_row, lambda v: v.unsqueeze(0))).squeeze(0)
        return out, out

    per_row = torch.func.vmap(torch.func.jacrev(one_row, has_aux=True), in_dims=(0, None if x_rows is None else 0))
    return lambda z: per_row(z, x_rows)


def _linearise(f, jacobian, x_rows: Inputs, z_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``f(z_{t-1}, x_t) [B, T, M]`` and ``J_t = ∂f/∂z (z_{t-1}, x_t) [B, T, M, M]`` for every step at once."""
    batch, steps, width = z_prev.shape
    z_rows = _rows(z_prev)
    if jacobian is None:
        jac, fz = _jacobian_by_autograd(f, x_rows)(z_rows)
    else:
        jac, fz = jacobian(z_rows, x_rows), f(z_rows, x_rows)
        if not isinstance(jac, torch.Tensor) or jac.shape != (batch * steps, width, width):
            shape = tuple(jac.shape) if isinstance(jac, torch.Tensor) else type(jac).__name__
            raise ValueError(
                f"jacobian(z [N, M], x) must return [N, M, M] = {(batch * steps, width, width)}, got {shape}"
            )
    return fz.view(batch, steps, width), jac.view(batch, steps, width, width)


class _ImplicitGradient(torch.autograd.Function):
    """Returns the converged trajectory ``z``; its gradient reaches ``f(z_{t-1}, x_t)`` by a reverse linear scan.

    At the solution ``z_t = f(z_{t-1}, x_t)``, so ``dz_t = J_t dz_{t-1} + df_t``: the vector-Jacobian product of
    ``dL/dz`` is ``g_t = dL/dz_t + J_{t+1}^T g_{t+1}`` (``g_T = dL/dz_T``), handed to ``f_t`` whose graph carries it to
    the parameters of ``f``, ``z0`` (through ``f_1 = f(z0, x_1)``) and ``x``.
    """

    @staticmethod
    def forward(ctx, fz, jac, z, scan):
        ctx.save_for_backward(jac)
        ctx.scan = scan
        return z.clone()

    @staticmethod
    def backward(ctx, grad_z):
        (jac,) = ctx.saved_tensors
        coefficient = torch.cat([torch.zeros_like(jac[:, :1]), jac[:, 1:].transpose(-1, -2).flip(1)], 1)
        g = affine_scan(coefficient, grad_z.flip(1), None, ctx.scan).flip(1)
        return g, None, None, None


def newton_scan(
    f,
    z0: torch.Tensor,
    x: Inputs = None,
    *,
    steps: int | None = None,
    jacobian=None,
    max_iters: int | None = None,
    tol: float | None = None,
    initial_guess: torch.Tensor | None = None,
    scan: str | None = None,
) -> tuple[torch.Tensor, NewtonScanInfo]:
    """The trajectory ``z_t = f(z_{t-1}, x_t)``, ``t = 1 .. T``, from ``z0``, solved for all ``t`` at once.

    Newton's method on the whole trajectory (DEER): from a guess ``z^(i)``, every step is linearised,
    ``z_t ≈ J_t z_{t-1} + b_t`` with ``J_t = ∂f/∂z (z^(i)_{t-1}, x_t)`` and
    ``b_t = f(z^(i)_{t-1}, x_t) - J_t z^(i)_{t-1}``, and the linear recurrence is solved in parallel over time
    by ``affine_scan`` to give ``z^(i+1)``. After ``i`` steps the first ``i`` states are exact, so at most ``T``
    steps are needed; for piecewise-linear ``f`` (PLRNN, AL-RNN) the step is exact as soon as the ReLU pattern
    of the guess is right, which takes few steps. Iteration stops
    when ``max |z^(i+1) - z^(i)| <= tol * max(1, max |z^(i+1)|)``.

    Cost per step: the Jacobians (``M`` vector-Jacobian products of ``f`` by default) and the scan,
    ``O(T M^3 log T)`` work (``"doubling"``) or ``O(T M^3)`` (``"chunked"``), against ``O(T M^2)`` for the whole
    sequential loop: it pays where the loop's ``T`` dependent steps, not the arithmetic, bound the time.

    Teacher forcing composes: pass the forced map as ``f``, e.g. ``(1 - α) F(z, s_t) + α ẑ_t`` with
    ``x = (s, ẑ)``; its Jacobian ``(1 - α) J`` also makes the solve better conditioned.

    Gradients flow to ``z0``, ``x`` and every tensor ``f`` uses, by implicit differentiation of the converged
    trajectory: one more evaluation of ``f`` at ``z_{t-1}`` with autograd on, and in the backward one reverse
    linear scan ``g_t = dL/dz_t + J_{t+1}^T g_{t+1}``. This is the gradient of the sequential loop wherever the
    trajectory solves the recurrence, and the same as running a last Newton step with autograd on from the
    detached solution (that step's output ``J_t z_{t-1} + f(z*_{t-1}) - J_t z*_{t-1}`` has the loop's sensitivities
    ``dz_t = J_t dz_{t-1} + ∂f_t``) without that step's forward scan. Not twice differentiable.

    Args:
        f: ``f(z [N, M], x) -> [N, M]``, rows independent (it is called with ``N = batch`` by the loop and
            ``N = batch * T`` here); ``x`` is None, a tensor ``[N, ...]`` or a tuple of them, as passed.
            The default Jacobian needs ``f`` to work under ``torch.func.vmap``.
        z0: ``[batch, M]``, the state before the first step; real floating point.
        x: per-step inputs ``[batch, T, ...]``, a tuple of such tensors, or None (then give ``steps``).
        steps: ``T`` when ``x`` is None; otherwise it must equal ``x``'s ``T`` if given.
        jacobian: ``jacobian(z [N, M], x) -> [N, M, M]``, ``∂f/∂z`` row by row (for a PLRNN
            ``diag(A) + W diag(z > 0)``); by default ``vmap(jacrev(f))`` row by row.
        max_iters: cap on Newton steps, ``T`` by default (the exact bound).
        tol: relative tolerance on the change of the trajectory, ``sqrt(eps)`` of ``z0``'s dtype by default
            (Newton converges quadratically, so the answer is then near ``eps``).
        initial_guess: ``[batch, T, M]``, e.g. the previous training step's trajectory; ``z0`` repeated by default.
        scan: ``"doubling"`` or ``"chunked"`` (see ``affine.py``); by default ``"doubling"`` on CUDA, else
            ``"chunked"``.

    Returns:
        ``z [batch, T, M]`` in ``z0``'s dtype and a ``NewtonScanInfo(iterations, residual, converged)``; warns
        when the cap is hit before the tolerance.

    Example::

        A, W, h = 0.9 * torch.ones(M), 0.1 * torch.randn(M, M), torch.zeros(M)
        plrnn = lambda z, x: A * z + torch.relu(z) @ W.T + h + x
        z, info = newton_scan(plrnn, z0, x, jacobian=lambda z, x: torch.diag(A) + W * (z > 0).unsqueeze(1))
    """
    steps = check_newton_inputs(f, z0, x, steps)
    batch, width = z0.shape
    if jacobian is not None and not callable(jacobian):
        raise TypeError(f"jacobian must be None or callable as jacobian(z [N, M], x) -> [N, M, M], got {jacobian!r}")
    if max_iters is None:
        max_iters = steps
    if not isinstance(max_iters, int) or isinstance(max_iters, bool) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive int, got {max_iters!r}")
    if tol is None:
        tol = math.sqrt(torch.finfo(z0.dtype).eps)
    if not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if scan is None:
        scan = "doubling" if z0.device.type == "cuda" else "chunked"
    if scan not in SCANS:
        raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
    if initial_guess is not None:
        if not isinstance(initial_guess, torch.Tensor):
            raise TypeError(f"initial_guess must be a torch.Tensor or None, got {type(initial_guess).__name__}")
        if initial_guess.shape != (batch, steps, width):
            raise ValueError(
                f"initial_guess must be [batch, T, M] = {(batch, steps, width)}, got {tuple(initial_guess.shape)}"
            )
    x_rows = _map(x, _rows)

    with torch.no_grad():
        probe = f(z0, step_inputs(x, 0))
        if not isinstance(probe, torch.Tensor) or probe.shape != z0.shape or probe.dtype != z0.dtype:
            got = f"{tuple(probe.shape)} {probe.dtype}" if isinstance(probe, torch.Tensor) else type(probe).__name__
            raise ValueError(f"f(z [N, M], x) must return z's shape and dtype {tuple(z0.shape)} {z0.dtype}, got {got}")
        start = z0.detach()
        z = start.unsqueeze(1).expand(batch, steps, width) if initial_guess is None else initial_guess.detach()
        z = z.to(z0.dtype)
        iterations, converged = 0, False
        while iterations < max_iters:
            z_prev = _shift(start, z)
            fz, jac = _linearise(f, jacobian, x_rows, z_prev)
            z_next = affine_scan(jac, fz - _matvec(jac, z_prev), start, scan)
            iterations += 1
            change, size = (z_next - z).abs().max().item(), z_next.abs().max().item()
            z = z_next
            if not math.isfinite(change):
                break
            if change <= tol * max(1.0, size):
                converged = True
                break

    z_prev = _shift(z0, z)
    fz = f(_rows(z_prev), x_rows).view(batch, steps, width)
    residual = (z - fz.detach()).abs().max().item()
    if not converged:
        warnings.warn(
            f"newton_scan stopped after {iterations} steps (max_iters = {max_iters}) with residual {residual:.3g} "
            f"above tol = {tol:g}",
            RuntimeWarning,
            stacklevel=2,
        )
    if fz.requires_grad:
        with torch.no_grad():
            jac = _linearise(f, jacobian, x_rows, z_prev.detach())[1]
        z = _ImplicitGradient.apply(fz, jac, z, scan)
    return z, NewtonScanInfo(iterations=iterations, residual=residual, converged=converged)
