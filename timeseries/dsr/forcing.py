"""Teacher forcing for DSR training: sparse (identity) forcing, generalised forcing (GTF), α estimation and annealing.

Both forcings are one forced map applied at every step ``t = 1 .. T-1`` of a subsequence ``x [batch, T, N]``::

    z_t  = F(z̃_{t-1})                                   (emitted as the prediction of x_t)
    z̃_t  = z_t with its first k units set to (1 − w_t) z_t[:k] + w_t ẑ_t

from ``z̃_0 = init_state(x_0)``, where ``ẑ_t = observation.forcing(x_t)`` (``k = N`` readout units for the identity
observation, all ``M`` units for the affine one). Sparse teacher forcing (STF) is ``w_t = 1`` when
``t % tau == 0`` and 0 otherwise: emit the prediction, then overwrite the readouts with the data every ``tau``
steps; no gradient flows into the overwritten units. Generalised teacher forcing (GTF) is ``w_t = α`` at every
step; the gradient through ``z̃`` is scaled by ``1 − α``.

The forced trajectory ``z̃`` solves ``z̃_t = f(z̃_{t-1}, (w_t, ẑ_t))`` with Jacobian ``diag(1 − w_t 1_k, 1) J_t``,
so it can be solved by the sequential loop or all at once by ``newton_scan`` (``solver="newton"``).
"""

import math

import torch
from lrnn.core.scan.newton import newton_scan

from .models import PiecewiseLinearRNN

SOLVERS = ("loop", "newton")
ALPHA_ESTIMATORS = ("product_upper_bound", "batch_maximum", "arithmetic_mean")


def forcing_weights(steps: int, *, tau: int | None = None, alpha: float | None = None) -> torch.Tensor:
    """Per-step forcing weights ``w [steps]`` (float64) for ``t = 0 .. steps-1`` (``w_0`` is unused).

    Exactly one of ``tau`` (STF: ``w_t = 1`` if ``t % tau == 0``) and ``alpha`` (GTF: ``w_t = α``) must be given.
    """
    if (tau is None) == (alpha is None):
        raise ValueError(f"give exactly one of tau (sparse forcing) and alpha (GTF), got tau={tau!r}, alpha={alpha!r}")
    if tau is not None:
        if isinstance(tau, bool) or not isinstance(tau, int) or tau < 1:
            raise ValueError(f"tau must be an int >= 1, got {tau!r}")
        return (torch.arange(steps) % tau == 0).double()
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    return torch.full((steps,), alpha, dtype=torch.float64)


def _blend(y: torch.Tensor, w: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
    """``y [n, M]`` with its first ``k`` units replaced by ``(1 − w) y[:, :k] + w ẑ``; ``w [n, 1]``, ``ẑ [n, k]``."""
    k = z_hat.shape[-1]
    forced = (1 - w) * y[:, :k] + w * z_hat
    return forced if k == y.shape[-1] else torch.cat([forced, y[:, k:]], dim=-1)


def forced_rollout(
    model: PiecewiseLinearRNN,
    x: torch.Tensor,
    *,
    tau: int | None = None,
    alpha: float | None = None,
    solver: str = "loop",
    return_forced: bool = False,
):
    """Run ``model`` over subsequences ``x [batch, T, N]`` under teacher forcing; returns the predictions.

    See the module docstring for the equations. Give ``tau`` for sparse forcing or ``alpha`` for GTF.

    Args:
        model: a ``PiecewiseLinearRNN`` (``step``, ``jacobian``, ``init_state``, ``observation.forcing``).
        x: data ``[batch, T, N]``, ``T >= 2``; ``x_0`` sets the initial state, ``x_t`` forces step ``t``.
        tau: forcing interval of sparse (identity) teacher forcing.
        alpha: GTF weight in ``[0, 1]``.
        solver: ``"loop"`` (sequential) or ``"newton"`` (``newton_scan`` with the models' exact Jacobians;
            the same trajectory to solver tolerance, gradients by implicit differentiation).
        return_forced: also return the forced states ``z̃ [batch, T-1, M]`` (``z̃_0 .. z̃_{T-2}``, the points
            where ``F`` was evaluated; used by the α estimators).

    Returns:
        ``z [batch, T-1, M]``: ``z_t = F(z̃_{t-1})`` for ``t = 1 .. T-1``, the predictions of ``x[:, 1:]`` through
        ``model.readout``; with ``return_forced``, ``(z, z̃_prev)``.
    """
    if not isinstance(model, PiecewiseLinearRNN):
        raise TypeError(f"model must be a PiecewiseLinearRNN, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != model.N or x.shape[1] < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be [batch, T >= 2, N={model.N}], got {shape}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    batch, steps, _ = x.shape
    w = forcing_weights(steps, tau=tau, alpha=alpha).to(device=x.device, dtype=x.dtype)
    z0 = model.init_state(x[:, 0])
    z_hat = model.observation.forcing(x[:, 1:])  # [batch, T-1, k]
    w_seq = w[1:].expand(batch, -1).unsqueeze(-1)  # [batch, T-1, 1]

    if solver == "loop":
        z, preds, forced = z0, [], []
        for w_t, z_hat_t in zip(w_seq.unbind(1), z_hat.unbind(1), strict=True):  # one backward for all steps
            forced.append(z)
            y = model.step(z)
            preds.append(y)
            z = _blend(y, w_t, z_hat_t)
        pred = torch.stack(preds, dim=1)
        z_prev = torch.stack(forced, dim=1)
    else:
        k = z_hat.shape[-1]

        def f(z, inputs):
            wt, zt = inputs
            return _blend(model.step(z), wt, zt)

        def jacobian(z, inputs):
            wt, _ = inputs
            scale = torch.cat([(1 - wt).expand(-1, k), wt.new_ones(wt.shape[0], model.M - k)], dim=-1)
            return scale.unsqueeze(-1) * model.jacobian(z)

        z_tilde, _ = newton_scan(f, z0, (w_seq, z_hat), jacobian=jacobian)
        z_prev = torch.cat([z0.unsqueeze(1), z_tilde[:, :-1]], dim=1)
        pred = model.step(z_prev.reshape(-1, model.M)).view(batch, steps - 1, model.M)
    return (pred, z_prev) if return_forced else pred


@torch.no_grad()
def estimate_alpha(jacobians: torch.Tensor, method: str = "product_upper_bound") -> float:
    """The GTF weight ``α* = max(0, 1 − 1/G)`` from Jacobians ``J [batch, T, M, M]`` along forced trajectories.

    ``G`` bounds the growth of the Jacobian products ``‖J_T ⋯ J_1‖^{1/T}`` (spectral norms, ``alpha_estimation.jl``):

    - ``"product_upper_bound"``: ``max_b (Π_t ‖J_{b,t}‖)^{1/T}``, the geometric mean of the norms per sequence;
    - ``"batch_maximum"``: ``max_{b,t} ‖J_{b,t}‖``;
    - ``"arithmetic_mean"``: ``‖mean_{b,t} J_{b,t}‖``.

    With ``α = α*`` the forced products ``Π (1 − α) ‖J_t‖`` stay bounded by 1, so gradients cannot explode.
    """
    if not isinstance(jacobians, torch.Tensor) or jacobians.dim() != 4 or jacobians.shape[-1] != jacobians.shape[-2]:
        shape = tuple(jacobians.shape) if isinstance(jacobians, torch.Tensor) else type(jacobians).__name__
        raise ValueError(f"jacobians must be [batch, T, M, M], got {shape}")
    if method not in ALPHA_ESTIMATORS:
        raise ValueError(f"method must be one of {ALPHA_ESTIMATORS}, got {method!r}")
    J = jacobians.double()
    if method == "arithmetic_mean":
        G = torch.linalg.matrix_norm(J.mean(dim=(0, 1)), ord=2).item()
    else:
        norms = torch.linalg.matrix_norm(J, ord=2)  # [batch, T]
        if method == "batch_maximum":
            G = norms.max().item()
        else:
            G = norms.clamp_min(torch.finfo(torch.float64).tiny).log().mean(dim=1).exp().max().item()
    return max(0.0, 1.0 - 1.0 / G) if G > 0 and math.isfinite(G) else (0.0 if G == 0 else 1.0)


def anneal_alpha(alpha: float, alpha_estimate: float, gamma: float = 0.999) -> float:
    """Annealed GTF (aGTF) update: ``α ← α̂`` if ``α̂ > α``, else ``α ← γ α + (1 − γ) α̂``.

    The papers start at ``α = 1`` and update every 5 batches with ``γ = 0.999``.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    return alpha_estimate if alpha_estimate > alpha else gamma * alpha + (1.0 - gamma) * alpha_estimate
