"""Piecewise-linear RNNs for dynamical-systems reconstruction: AL-RNN, PLRNN, shallow and clipped shallow PLRNN.

Every model is a piecewise-affine map ``z_t = F(z_{t-1}) (+ C s_t)`` of a latent state ``z [batch, M]``. Its
linear subregions are labelled by a bit pattern ``d`` (the signs of the ReLU arguments); inside region ``d`` the
map is ``F(z) = J_d z + c_d``. The models share one face:

- ``step(z [batch, M], s=None) -> z_next [batch, M]``;
- ``forward(z0 [batch, M], steps, s=None) -> [batch, steps, M]`` (alias ``generate``): the free-running orbit,
  whose row 0 is ``z0`` (as ``generate`` in the authors' Julia code);
- ``jacobian(z [batch, M]) -> [batch, M, M]``, ``subregion(z [..., M]) -> bool [..., n_bits]``,
  ``region_affine(bits [K, n_bits]) -> (J [K, M, M], c [K, M])``;
- ``fixed_points(bits=None) -> FixedPoints``: per region, ``z* = (I - J_d)^{-1} c_d``, whether ``z*`` lies in
  its own region (otherwise it is "virtual") and the eigenvalues of ``J_d``;
- ``init_state(x1 [batch, N]) -> z1 [batch, M]``, ``readout(z [..., M]) -> x [..., N]`` via ``self.observation``.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .observation import AffineObservation, IdentityObservation

OBSERVATIONS = ("identity", "affine")
MAX_ENUMERATED_BITS = 16


class FixedPoints(NamedTuple):
    """Fixed points of a piecewise-affine map, one per region pattern.

    Attributes:
        bits: ``[K, n_bits]`` bool, the region patterns ``d``.
        z: ``[K, M]`` float64, ``z* = (I - J_d)^{-1} c_d`` (NaN where ``I - J_d`` is singular).
        in_region: ``[K]`` bool, whether ``z*`` lies in region ``d`` (a real fixed point; otherwise virtual).
        eigvals: ``[K, M]`` complex128, eigenvalues of ``J_d``.
        spectral_radius: ``[K]`` float64, ``max |eig(J_d)|``.
        stable: ``[K]`` bool, ``spectral_radius < 1``.
    """

    bits: torch.Tensor
    z: torch.Tensor
    in_region: torch.Tensor
    eigvals: torch.Tensor
    spectral_radius: torch.Tensor
    stable: torch.Tensor


def normalized_positive_definite(M: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Talathi & Vartak (2016): ``K = (R^T R / M + I) / λ_max`` with ``R ~ N(0, 1)^{M×M}``; ``[M, M]``, λ_max(K) = 1."""
    R = torch.randn(M, M, generator=generator, dtype=torch.float64)
    K = R.T @ R / M + torch.eye(M, dtype=torch.float64)
    return (K / torch.linalg.eigvalsh(K).abs().max()).float()


def _uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    r = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-r, r)


def _all_patterns(n_bits: int) -> torch.Tensor:
    """All ``2**n_bits`` patterns ``[2**n_bits, n_bits]``, row k = binary digits of k, most significant first."""
    ids = torch.arange(2**n_bits)
    return (ids[:, None] >> torch.arange(n_bits - 1, -1, -1)) & 1 == 1


class PiecewiseLinearRNN(nn.Module):
    """Shared face of the piecewise-linear DSR models (see the module docstring); subclasses give the map.

    Args:
        M: latent units.
        N: observed dimensions.
        observation: ``"identity"`` (readouts = first ``N`` units, ``z_1 = [x_1; L x_1]``) or ``"affine"``
            (``x = B z + b``, ``z_1 = B^+ (x_1 - b)``).
        input_dim: dimensions ``K`` of an external input ``s_t``, entering as ``+ C s_t`` (0: none).
    """

    n_bits: int

    def __init__(self, M: int, N: int, observation: str = "identity", input_dim: int = 0) -> None:
        super().__init__()
        if not isinstance(M, int) or M < 1:
            raise ValueError(f"M must be a positive int, got {M!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        if not isinstance(input_dim, int) or input_dim < 0:
            raise ValueError(f"input_dim must be an int >= 0, got {input_dim!r}")
        self.M, self.N, self.input_dim = M, N, input_dim
        self.observation = IdentityObservation(N, M) if observation == "identity" else AffineObservation(N, M)
        self.C = nn.Parameter(nn.init.xavier_uniform_(torch.empty(M, input_dim))) if input_dim else None

    # -- the map, given by subclasses ---------------------------------------------------------------------------
    def _map(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _bits(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _affine(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    # -- validation ---------------------------------------------------------------------------------------------
    def _check_state(self, z: torch.Tensor, name: str = "z", batched: bool = True) -> None:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {z.dtype}")
        if (batched and z.dim() != 2) or z.dim() < 1 or z.shape[-1] != self.M:
            want = "[batch, M]" if batched else "[..., M]"
            raise ValueError(f"{name} must have shape {want} with M={self.M}, got {tuple(z.shape)}")

    def _check_input(self, s: torch.Tensor | None, shape: tuple[int, ...]) -> None:
        if s is None:
            return
        if self.C is None:
            raise ValueError("this model has no external input (input_dim=0) but s was given")
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"s must be a torch.Tensor, got {type(s).__name__}")
        if tuple(s.shape) != shape:
            raise ValueError(f"s must have shape {list(shape)}, got {tuple(s.shape)}")

    # -- public face --------------------------------------------------------------------------------------------
    def step(self, z: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """One step ``z [batch, M]`` -> ``F(z) (+ C s)`` ``[batch, M]``; ``s [batch, input_dim]``, None means zero."""
        self._check_state(z)
        self._check_input(s, (z.shape[0], self.input_dim))
        z_next = self._map(z)
        return z_next if s is None else z_next + s @ self.C.T

    def forward(self, z0: torch.Tensor, steps: int, s: torch.Tensor | None = None) -> torch.Tensor:
        """Free-running orbit ``[batch, steps, M]`` from ``z0 [batch, M]``; row 0 is ``z0``.

        ``s [batch, steps, input_dim]`` is aligned with the output: ``z_t = F(z_{t-1}) + C s_t`` for ``t >= 1``
        (``s[:, 0]`` is not used).
        """
        self._check_state(z0, "z0")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        self._check_input(s, (z0.shape[0], steps, self.input_dim))
        out = [z0]
        z = z0
        inputs = [None] * steps if s is None else s.unbind(1)  # one backward for all steps
        for t in range(1, steps):
            z = self._map(z)
            if inputs[t] is not None:
                z = z + inputs[t] @ self.C.T
            out.append(z)
        return torch.stack(out, dim=1)

    generate = forward

    def subregion(self, z: torch.Tensor) -> torch.Tensor:
        """Region bits ``bool [..., n_bits]`` of states ``z [..., M]`` (the signs of the ReLU arguments)."""
        self._check_state(z, batched=False)
        return self._bits(z)

    def region_affine(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map of regions ``bits [K, n_bits]``: ``J [K, M, M]`` and ``c [K, M]``, ``F(z) = J z + c``."""
        if not isinstance(bits, torch.Tensor):
            raise TypeError(f"bits must be a torch.Tensor, got {type(bits).__name__}")
        if bits.dim() != 2 or bits.shape[1] != self.n_bits:
            raise ValueError(f"bits must have shape [K, n_bits={self.n_bits}], got {tuple(bits.shape)}")
        return self._affine(bits.bool())

    def jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """``dF/dz`` at ``z [batch, M]``: the Jacobian ``J_d [batch, M, M]`` of each state's region ``d``."""
        self._check_state(z)
        return self._affine(self._bits(z))[0]

    @torch.no_grad()
    def fixed_points(self, bits: torch.Tensor | None = None) -> FixedPoints:
        """Fixed point and stability of the autonomous map (``s = 0``) in each region of ``bits [K, n_bits]``.

        Solves ``(I - J_d) z* = c_d`` in float64; ``z*`` is a real fixed point only if it lies in region ``d``.
        ``bits=None`` enumerates all ``2**n_bits`` regions (only for ``n_bits <= 16``).
        """
        if bits is None:
            if self.n_bits > MAX_ENUMERATED_BITS:
                raise ValueError(
                    f"{self.n_bits} region bits give 2**{self.n_bits} regions; pass bits (e.g. the used subregions)"
                )
            bits = _all_patterns(self.n_bits).to(self._device())
        J, c = self.region_affine(bits)
        J, c = J.double(), c.double()
        eye = torch.eye(self.M, dtype=torch.float64, device=J.device)
        z, info = torch.linalg.solve_ex(eye - J, c.unsqueeze(-1))
        z = z.squeeze(-1).masked_fill((info != 0)[:, None], float("nan"))
        dtype = next(self.parameters()).dtype  # the region test runs at the model's precision
        in_region = (self._bits(z.to(dtype)) == bits.bool()).all(-1) & torch.isfinite(z).all(-1)
        eig = torch.linalg.eigvals(J)
        radius = eig.abs().max(-1).values
        return FixedPoints(bits.bool(), z, in_region, eig, radius, radius < 1)

    def init_state(self, x1: torch.Tensor) -> torch.Tensor:
        """Latent initialisation ``x1 [batch, N]`` -> ``z1 [batch, M]`` of the observation model."""
        return self.observation.init_state(x1)

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        """Observations ``z [..., M]`` -> ``x [..., N]`` of the observation model."""
        return self.observation(z)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


class ALRNN(PiecewiseLinearRNN):
    """Almost-linear RNN (Brenner et al., NeurIPS 2024): ``z_t = A ⊙ z_{t-1} + W Φ*(z_{t-1}) + h (+ C s_t)``.

    ``Φ*(z) = (z_1, …, z_{M-P}, relu(z_{M-P+1}), …, relu(z_M))``: ReLU on the last ``P`` units only. Unit layout:
    ``N`` readouts, ``M - N - P`` linear latent units, ``P`` piecewise-linear units. Region bits
    ``d = (z[M-P:] > 0)``; ``J_d = diag(A) + W diag(1_{M-P}, d)``, ``c_d = h``.

    Parameters: ``A [M]`` = diag of the normalised positive-definite matrix (Talathi & Vartak), ``W [M, M]`` full
    (diagonal included) ~ N(0, 0.01²), ``h [M]`` = 0, the observation model's (``L [M-N, N]`` for identity) and
    ``C [M, input_dim]``.
    """

    def __init__(self, M: int, P: int, N: int, observation: str = "identity", input_dim: int = 0) -> None:
        super().__init__(M, N, observation, input_dim)
        if not isinstance(P, int) or not 0 <= P <= M:
            raise ValueError(f"P must be an int in [0, M={M}], got {P!r}")
        if observation == "identity" and N + P > M:
            raise ValueError(f"the identity observation needs N + P <= M, got N={N}, P={P}, M={M}")
        self.P = self.n_bits = P
        self.A = nn.Parameter(torch.diagonal(normalized_positive_definite(M)).clone())
        self.W = nn.Parameter(0.01 * torch.randn(M, M))
        self.h = nn.Parameter(torch.zeros(M))

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        k = self.M - self.P
        phi = torch.cat([z[:, :k], F.relu(z[:, k:])], dim=-1)
        return self.A * z + phi @ self.W.T + self.h

    def _bits(self, z: torch.Tensor) -> torch.Tensor:
        return z[..., self.M - self.P :] > 0

    def _affine(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ones = bits.new_ones(bits.shape[0], self.M - self.P)
        D = torch.cat([ones, bits], dim=-1).to(self.W.dtype)
        J = torch.diag_embed(self.A.expand_as(D)) + self.W * D[:, None, :]
        return J, self.h.expand(bits.shape[0], -1)

    @classmethod
    def from_reference_state_dict(cls, state_dict: dict[str, torch.Tensor], P: int) -> "ALRNN":
        """Load the authors' PyTorch AL-RNN (``alrnn_python``; e.g. ``models/lorenz_m20_p2``, P = 2).

        Their keys are ``A [M]``, ``W [M, M]``, ``h [M]``, ``B [N, M]``; their latent initialisation is
        ``z_1 = x_1 B`` with the first ``N`` units then set to ``x_1``, i.e. ``L = B[:, N:]^T``. ``P`` is not
        stored in the file (it is in its name). The step is the same: ``A ⊙ z + W Φ*(z) + h``.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict of tensors, got {type(state_dict).__name__}")
        missing = {"A", "W", "h", "B"} - set(state_dict)
        if missing:
            raise ValueError(f"state_dict lacks keys {sorted(missing)}; has {sorted(state_dict)}")
        A, W, h, B = (state_dict[k] for k in ("A", "W", "h", "B"))
        M = A.numel()
        if A.shape != (M,) or W.shape != (M, M) or h.shape != (M,) or B.dim() != 2 or B.shape[1] != M:
            raise ValueError(
                "expected A [M], W [M, M], h [M], B [N, M]; got "
                f"A {tuple(A.shape)}, W {tuple(W.shape)}, h {tuple(h.shape)}, B {tuple(B.shape)}"
            )
        N = B.shape[0]
        model = cls(M, P, N)
        with torch.no_grad():
            model.A.copy_(A)
            model.W.copy_(W)
            model.h.copy_(h)
            model.observation.L.copy_(B[:, N:].T)
        return model


class PLRNN(PiecewiseLinearRNN):
    """Vanilla PLRNN: ``z_t = A ⊙ z_{t-1} + W relu(z_{t-1}) + h (+ C s_t)`` with off-diagonal ``W``.

    ``W``'s diagonal is masked in the map (its entries are initialised to 0 and get no gradient), as
    ``keep_connectivity_offdiagonal!`` in the GTF code. Init: ``A = diag(K)``, ``W = offdiag(K)`` of the normalised
    positive-definite ``K``, ``h = 0``. Region bits ``d = (z > 0)`` (``n_bits = M``);
    ``J_d = diag(A) + W diag(d)``, ``c_d = h``.
    """

    def __init__(self, M: int, N: int | None = None, observation: str = "identity", input_dim: int = 0) -> None:
        super().__init__(M, M if N is None else N, observation, input_dim)
        self.n_bits = M
        K = normalized_positive_definite(M)
        mask = 1.0 - torch.eye(M)
        self.register_buffer("offdiag", mask, persistent=False)
        self.A = nn.Parameter(torch.diagonal(K).clone())
        self.W = nn.Parameter(K * mask)
        self.h = nn.Parameter(torch.zeros(M))

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        return self.A * z + F.relu(z) @ (self.W * self.offdiag).T + self.h

    def _bits(self, z: torch.Tensor) -> torch.Tensor:
        return z > 0

    def _affine(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        D = bits.to(self.W.dtype)
        J = torch.diag_embed(self.A.expand_as(D)) + (self.W * self.offdiag) * D[:, None, :]
        return J, self.h.expand(bits.shape[0], -1)


class ShallowPLRNN(PiecewiseLinearRNN):
    """Shallow PLRNN (Hess et al., ICML 2023): ``z_t = A ⊙ z_{t-1} + W₁ relu(W₂ z_{t-1} + h₂) + h₁ (+ C s_t)``.

    ``W₁ [M, H]``, ``W₂ [H, M]`` uniform ``±1/sqrt(fan_in)``; ``A = diag(K)`` (normalised positive definite),
    ``h₁ = h₂ = 0``. Region bits ``d = (W₂ z + h₂ > 0)`` (``n_bits = H``);
    ``J_d = diag(A) + W₁ diag(d) W₂``, ``c_d = W₁ diag(d) h₂ + h₁``.
    """

    def __init__(self, M: int, H: int, N: int | None = None, observation: str = "identity", input_dim: int = 0) -> None:
        super().__init__(M, M if N is None else N, observation, input_dim)
        if not isinstance(H, int) or H < 1:
            raise ValueError(f"H must be a positive int, got {H!r}")
        self.H = self.n_bits = H
        self.A = nn.Parameter(torch.diagonal(normalized_positive_definite(M)).clone())
        self.W1 = nn.Parameter(_uniform((M, H), H))
        self.W2 = nn.Parameter(_uniform((H, M), M))
        self.h1 = nn.Parameter(torch.zeros(M))
        self.h2 = nn.Parameter(torch.zeros(H))

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        return self.A * z + F.relu(z @ self.W2.T + self.h2) @ self.W1.T + self.h1

    def _bits(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W2.T + self.h2 > 0

    def _affine(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        W1D = self.W1 * bits.to(self.W1.dtype)[:, None, :]  # [K, M, H] = W₁ diag(d)
        J = torch.diag_embed(self.A.expand(bits.shape[0], -1)) + W1D @ self.W2
        return J, W1D @ self.h2 + self.h1


class ClippedShallowPLRNN(ShallowPLRNN):
    """Clipped shallow PLRNN: ``z_t = A ⊙ z_{t-1} + W₁ [relu(W₂ z + h₂) − relu(W₂ z)] + h₁ (+ C s_t)``.

    Orbits are bounded if ``‖A‖ < 1``. As the shallow PLRNN, but ``h₂`` is uniform ``±1/sqrt(H)`` (as the GTF
    code). Region bits are both ReLU patterns, ``[d₁; d₂] = [W₂ z + h₂ > 0; W₂ z > 0]`` (``n_bits = 2H``);
    ``J_d = diag(A) + W₁ diag(d₁ − d₂) W₂``, ``c_d = W₁ diag(d₁) h₂ + h₁``.
    """

    def __init__(self, M: int, H: int, N: int | None = None, observation: str = "identity", input_dim: int = 0) -> None:
        super().__init__(M, H, N, observation, input_dim)
        self.n_bits = 2 * H
        with torch.no_grad():
            self.h2.copy_(_uniform((H,), H))

    def _map(self, z: torch.Tensor) -> torch.Tensor:
        u = z @ self.W2.T
        return self.A * z + (F.relu(u + self.h2) - F.relu(u)) @ self.W1.T + self.h1

    def _bits(self, z: torch.Tensor) -> torch.Tensor:
        u = z @ self.W2.T
        return torch.cat([u + self.h2 > 0, u > 0], dim=-1)

    def _affine(self, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = bits.to(self.W1.dtype)
        d1, d2 = d[:, : self.H], d[:, self.H :]
        J = torch.diag_embed(self.A.expand(bits.shape[0], -1)) + (self.W1 * (d1 - d2)[:, None, :]) @ self.W2
        return J, (self.W1 * d1[:, None, :]) @ self.h2 + self.h1
