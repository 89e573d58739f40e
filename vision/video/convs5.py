"""ConvS5 (Smith et al., NeurIPS 2023): a convolutional state-space model with a pointwise diagonal transition.

Per state channel ``p`` (``P = ssm_size / 2`` complex channels, the conjugate half) and pixel, with ``*`` a 2-D
convolution over the latent map::

    x_t = Lambda_bar ⊙ x_{t-1} + B_bar * u_t,        y_t = 2 Re(C * x_t)

``Lambda_bar = exp(Lambda Delta)`` and ``B_bar = (Lambda_bar - 1) / Lambda ⊙ B`` (zero-order hold, one time step
``Delta_p`` per state channel, in frames). The transition is 1x1 and diagonal, so the recurrence is an elementwise
complex scan over ``[B, T, P, h, w]`` (``linear_scan``), and the B and C convolutions run over all frames at once
outside it. A layer adds the official ``resnet`` C/D branch, dropout, the skip ``u + y`` and a post-LayerNorm;
``ConvS5Video`` stacks 8 of them between the ResNet encoder and decoder (``configs/vision/convs5_moving_mnist.yaml``).
"""

import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from lrnn.core.scan import linear_scan, linear_scan_step
from torch import nn

from ...core.hippo import dplr_hippo
from .initializers import he_normal
from .predictor import VideoPredictor
from .residual import NORM_EPS, PostNormResidual


class StepWeights(NamedTuple):
    """The discretised parameters as the step and the parallel form use them: ``Lambda_bar [P]`` complex64, the real
    convolution weight of ``B_bar`` ``[2P, U, k_B, k_B]`` (real parts, then imaginary) and that of ``2 Re(C .)``
    ``[U, 2P, k_C, k_C]``."""

    lam_bar: torch.Tensor
    input_weight: torch.Tensor
    output_weight: torch.Tensor


class ConvS5SSM(nn.Module):
    """The ConvS5 state-space model on latent maps ``u [B, T, U, h, w]`` (``U = d_model``), state
    ``x [B, P, h, w]`` complex64.

    Initialisation (S5): ``Lambda`` the conjugate half of HiPPO-DPLR (``dplr_hippo``), ``B = V^* B_real`` and
    ``C = C_real V`` with ``B_real``, ``C_real`` He-normal real kernels (fan-in ``U k_B^2`` and ``ssm_size k_C^2``),
    ``log Delta`` uniform in ``[log dt_min, log dt_max]``. With ``clip_eigs``, ``Re(Lambda)`` is clipped to
    ``<= -1e-4`` when used, so every mode decays.

    Args:
        d_model: input and output channels ``U``.
        ssm_size: real state size ``N``; ``P = N / 2`` complex channels are kept.
        blocks: HiPPO-DPLR blocks on the diagonal (1 in the official configs).
        b_kernel_size, c_kernel_size: odd widths of the B and C convolutions (3).
        dt_min, dt_max: range of the initial time steps, in frames.
        clip_eigs: clip ``Re(Lambda)`` to ``<= -1e-4``.

    Parameters: ``lambda_re``, ``lambda_im``, ``log_step [P]``; ``B [P, U, k_B, k_B, 2]`` and
    ``C [U, P, k_C, k_C, 2]`` (real and imaginary parts).
    """

    def __init__(
        self,
        d_model: int,
        ssm_size: int = 256,
        blocks: int = 1,
        b_kernel_size: int = 3,
        c_kernel_size: int = 3,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        clip_eigs: bool = True,
    ) -> None:
        super().__init__()
        for name, size in (("b_kernel_size", b_kernel_size), ("c_kernel_size", c_kernel_size)):
            if not isinstance(size, int) or size < 1 or size % 2 == 0:
                raise ValueError(f"{name} must be a positive odd int, got {size!r}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min} and dt_max={dt_max}")
        lam, eigenvectors = dplr_hippo(ssm_size, blocks)
        self.d_model, self.state_size, self.clip_eigs = d_model, lam.numel(), clip_eigs
        self.lambda_re = nn.Parameter(lam.real.float())
        self.lambda_im = nn.Parameter(lam.imag.float())
        log_span = math.log(dt_max) - math.log(dt_min)
        self.log_step = nn.Parameter(torch.rand(self.state_size) * log_span + math.log(dt_min))
        kb, kc = b_kernel_size, c_kernel_size
        b_real = he_normal(ssm_size, d_model * kb * kb, fan_in=d_model * kb * kb).double()
        b_tilde = (eigenvectors.conj().T @ b_real.to(torch.complex128)).reshape(self.state_size, d_model, kb, kb)
        self.B = nn.Parameter(torch.view_as_real(b_tilde).float())
        c_real = he_normal(d_model * kc * kc, ssm_size, fan_in=ssm_size * kc * kc).double()
        c_tilde = (c_real.to(torch.complex128) @ eigenvectors).reshape(d_model, kc, kc, self.state_size)
        self.C = nn.Parameter(torch.view_as_real(c_tilde.permute(0, 3, 1, 2)).float().contiguous())
        self._fixed_weights: StepWeights | None = None

    def eigenvalues(self) -> torch.Tensor:
        """The continuous-time ``Lambda [P]`` (complex64) in use, with ``Re(Lambda) <= -1e-4`` under ``clip_eigs``."""
        real = self.lambda_re.clamp(max=-1e-4) if self.clip_eigs else self.lambda_re
        return torch.complex(real, self.lambda_im)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-order hold: ``Lambda_bar [P]`` and ``B_bar [P, U, k_B, k_B]``, both complex64."""
        lam = self.eigenvalues()
        lam_bar = torch.exp(lam * self.log_step.exp())
        b_bar = ((lam_bar - 1) / lam)[:, None, None, None] * torch.view_as_complex(self.B)
        return lam_bar, b_bar

    def step_weights(self) -> StepWeights:
        """``StepWeights`` from the parameters (differentiable)."""
        with torch.autocast(self.B.device.type, enabled=False):
            lam_bar, b_bar = self.discretize()
            c = torch.view_as_complex(self.C)
            return StepWeights(
                lam_bar, torch.cat([b_bar.real, b_bar.imag]), torch.cat([2 * c.real, -2 * c.imag], dim=1)
            )

    @contextmanager
    def fixed_step_weights(self) -> Iterator[None]:
        """A scope in which ``step`` reuses the ``StepWeights`` derived on entry instead of deriving them every
        frame (about a third of a sampled frame's operations); the parameters must not change inside it. Under
        autograd the gradients still reach the parameters, through the weights' shared graph."""
        self._fixed_weights = self.step_weights()
        try:
            yield
        finally:
            self._fixed_weights = None

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``u [B, T, U, h, w] -> (y [B, T, U, h, w]`` in ``u``'s dtype, ``x_T [B, P, h, w]`` complex64), from
        ``state`` or zeros; the ``T`` frames run as one ``linear_scan``."""
        self._check_input("u", u, 5)
        batch, steps = u.shape[:2]
        self._check_state(state, batch, u.shape[-2:])
        weights = self.step_weights()
        with torch.autocast(u.device.type, enabled=False):
            bu = self._input_to_state(u.float().flatten(0, 1), weights.input_weight).unflatten(0, (batch, steps))
            a = weights.lam_bar[:, None, None].expand_as(bu)
            x, last = linear_scan(a, bu, initial_state=state, output_final_state=True)
            y = self._state_to_output(x.flatten(0, 1), weights.output_weight).unflatten(0, (batch, steps))
        return y.to(u.dtype), last

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: ``u_t [B, U, h, w] -> (y_t [B, U, h, w], x_t [B, P, h, w])``, from ``state`` or zeros."""
        self._check_input("u_t", u_t, 4)
        self._check_state(state, u_t.shape[0], u_t.shape[-2:])
        weights = self.step_weights() if self._fixed_weights is None else self._fixed_weights
        with torch.autocast(u_t.device.type, enabled=False):
            bu = self._input_to_state(u_t.float(), weights.input_weight)
            x = linear_scan_step(weights.lam_bar[:, None, None].expand_as(bu), bu, state)
            y = self._state_to_output(x, weights.output_weight)
        return y.to(u_t.dtype), x

    @staticmethod
    def _input_to_state(u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``B_bar * u``: real ``u [N, U, h, w]`` -> complex64 ``[N, P, h, w]``, one real conv for both parts."""
        real, imag = F.conv2d(u, weight, padding=weight.shape[-1] // 2).chunk(2, dim=1)
        return torch.complex(real, imag)

    @staticmethod
    def _state_to_output(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``2 Re(C * x) = 2 (Re C * Re x - Im C * Im x)``: complex ``[N, P, h, w]`` -> real ``[N, U, h, w]``."""
        return F.conv2d(torch.cat([x.real, x.imag], dim=1), weight, padding=weight.shape[-1] // 2)

    def _check_input(self, name: str, u: object, ndim: int) -> None:
        layout = "[B, T, U, h, w]" if ndim == 5 else "[B, U, h, w]"
        if not isinstance(u, torch.Tensor) or u.dim() != ndim or u.shape[-3] != self.d_model:
            shape = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
            raise ValueError(f"{name} must be {layout} with U = d_model = {self.d_model}, got {shape}")

    def _check_state(self, state: torch.Tensor | None, batch: int, spatial: torch.Size) -> None:
        if state is None:
            return
        expected = (batch, self.state_size, *spatial)
        if not isinstance(state, torch.Tensor) or state.dtype != torch.complex64:
            kind = state.dtype if isinstance(state, torch.Tensor) else type(state).__name__
            raise TypeError(f"the ConvS5 state must be a complex64 tensor [B, P, h, w] = {expected}, got {kind}")
        if tuple(state.shape) != expected:
            raise ValueError(f"the ConvS5 state must be [B, P, h, w] = {expected}, got {tuple(state.shape)}")


class ResNetCDBlock(nn.Module):
    """The official ``resnet`` C/D branch on each frame: ``GELU(y + conv(GELU(GN(conv(GELU(GN(y)))))))``,
    ``[N, D, h, w] -> [N, D, h, w]`` (GELU in its tanh form, Flax's default)."""

    def __init__(self, d_model: int, kernel_size: int = 3, num_groups: int = 32) -> None:
        super().__init__()
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"d_kernel_size must be a positive odd int, got {kernel_size!r}")
        self.norm1 = nn.GroupNorm(num_groups, d_model, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(d_model, d_model, kernel_size, padding=kernel_size // 2)
        self.norm2 = nn.GroupNorm(num_groups, d_model, eps=NORM_EPS)
        self.conv2 = nn.Conv2d(d_model, d_model, kernel_size, padding=kernel_size // 2)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.gelu(self.norm1(y), approximate="tanh"))
        h = self.conv2(F.gelu(self.norm2(h), approximate="tanh"))
        return F.gelu(y + h, approximate="tanh")


class ConvS5Layer(nn.Module):
    """``LayerNorm(u + dropout(ResNetCD(ConvS5SSM(u))))`` on ``[B, T, d_model, h, w]``; the state is the SSM's."""

    def __init__(
        self, d_model: int, d_kernel_size: int = 3, num_groups: int = 32, dropout: float = 0.0, **ssm_kwargs
    ) -> None:
        super().__init__()
        self.ssm = ConvS5SSM(d_model, **ssm_kwargs)
        self.branch = ResNetCDBlock(d_model, d_kernel_size, num_groups)
        self.residual = PostNormResidual(d_model, dropout)

    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y, state = self.ssm(u, state)
        return self.residual(u, self.branch(y.flatten(0, 1)).view_as(y)), state

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y_t, state = self.ssm.step(u_t, state)
        return self.residual(u_t[:, None], self.branch(y_t)[:, None])[:, 0], state


class ConvS5Video(VideoPredictor):
    """ConvS5 next-frame model (the official ``convS5_noVQ``): ResNet encoder, ``n_layers`` ``ConvS5Layer``,
    mirrored decoder with ``tanh``. States are one complex64 ``[B, ssm_size / 2, h, w]`` per layer.

    Args:
        image_size, channels, depths, d_model, num_groups: see ``VideoPredictor``.
        n_layers: ConvS5 layers (8).
        ssm_size, blocks, clip_eigs, b_kernel_size, c_kernel_size, dt_min, dt_max: see ``ConvS5SSM``.
        d_kernel_size: width of the C/D branch's convolutions (3).
        dropout: dropout rate of every layer's output (0 in the official configs).
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        depths: Sequence[int] = (64, 128, 256),
        d_model: int = 256,
        n_layers: int = 8,
        ssm_size: int = 256,
        blocks: int = 1,
        clip_eigs: bool = True,
        b_kernel_size: int = 3,
        c_kernel_size: int = 3,
        d_kernel_size: int = 3,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dropout: float = 0.0,
        num_groups: int = 32,
    ) -> None:
        ssm_kwargs = dict(
            ssm_size=ssm_size,
            blocks=blocks,
            b_kernel_size=b_kernel_size,
            c_kernel_size=c_kernel_size,
            dt_min=dt_min,
            dt_max=dt_max,
            clip_eigs=clip_eigs,
        )
        super().__init__(
            image_size,
            channels,
            depths,
            d_model,
            num_groups,
            n_layers,
            lambda: ConvS5Layer(d_model, d_kernel_size, num_groups, dropout, **ssm_kwargs),
        )

    @contextmanager
    def fixed_step_weights(self) -> Iterator[None]:
        """Every layer's ``ConvS5SSM.fixed_step_weights``: frame-by-frame generation derives the discretised
        weights once, not once a frame and layer."""
        with ExitStack() as stack:
            for layer in self.layers:
                stack.enter_context(layer.ssm.fixed_step_weights())
            yield
