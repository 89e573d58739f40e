"""SS2D, VMamba's 2D selective scan (Liu et al., NeurIPS 2024, arXiv:2401.10166; github.com/MzeroMiko/VMamba).

A ``[B, H, W, E]`` map is read along four routes of ``L = H W`` steps: row-major, column-major, and both of those
reversed. Each route owns ``E`` channels, its own ``x_proj``, ``dt_proj``, ``A`` and ``D``, and one ``B``/``C``
pair shared by its channels. The two orders are stacked along channels into one ``[B, L, 2E]`` sequence; routes 0
and 1 scan it forward and routes 2 and 3 backward (``reverse=True``, in place: no reversed copies), each pair as one
``selective_scan`` call with ``G = 2`` groups. The outputs, already in each order's own positions, are summed and
put back in row-major order (the cross-merge). Per block, with ``C`` model channels and ``E = ssm_ratio * C``
inner channels::

    x      = in_proj(x)                     # E channels, or 2E split into x, z with gate=True (VMamba v0)
    x      = silu(dwconv3x3(x))             # depthwise, no bias in v2, with bias in v0
    xs     = cross_scan(x)                  # [B, L, 2, E]: row-major, column-major
    dt, B, C = x_proj_k(xs_(k mod 2))       # per route k: [B, L, R], [B, L, N], [B, L, N]
    y      = selective_scan(xs, dt_proj_k(dt), A, B, C, D, dt_bias, softplus)              # routes 0, 1
           + selective_scan(xs, dt_proj_k(dt), A, B, C, D, dt_bias, softplus, reverse=True)   # routes 2, 3
    y      = out_norm(cross_merge(y))       # LayerNorm over E
    out    = out_proj(y * silu(z) if gate else y)

Parameters keep the authors' names and layouts (``x_proj_weight [4, R + 2N, E]``, ``dt_projs_weight [4, E, R]``,
``dt_projs_bias [4, E]``, ``A_logs [4E, N]``, ``Ds [4E]``), so their checkpoints load without reshaping.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...core.mixers.mamba import dt_bias_init
from ...core.scan import selective_scan
from ...kernels.layer_norm import LayerNorm

ROUTES = 4


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, E]`` -> ``[B, H W, 2, E]``: the row-major and the column-major order (routes 0 and 1; routes 2
    and 3 read the same orders backwards)."""
    rows = x.flatten(1, 2)
    cols = x.transpose(1, 2).flatten(1, 2)
    return torch.stack([rows, cols], dim=2)


def cross_merge(y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[B, H W, 2, E]`` outputs in the two orders -> ``[B, H, W, E]``: each back in row-major order, summed (the
    adjoint of ``cross_scan``)."""
    batch, _, _, channels = y.shape
    cols = y[:, :, 1].reshape(batch, width, height, channels).transpose(1, 2)
    return y[:, :, 0].reshape(batch, height, width, channels) + cols


def _dt_projection(d_inner: int, dt_rank: int, dt_min: float, dt_max: float, dt_init_floor: float):
    """mamba-ssm's ``dt_proj`` init: weight ``[E, R]`` uniform in ``±R^-1/2``; bias ``[E] = softplus^-1(dt)``,
    ``dt`` log-uniform in ``[dt_min, dt_max]`` and at least ``dt_init_floor``."""
    std = dt_rank**-0.5
    weight = torch.empty(d_inner, dt_rank).uniform_(-std, std)
    return weight, dt_bias_init(d_inner, dt_min, dt_max, dt_init_floor)


def _route_projections(x: torch.Tensor, x_proj_weight: torch.Tensor) -> torch.Tensor:
    """``x [B, H, W, E]`` times each route's ``x_proj_weight [4, M, E]`` -> ``[B, H W, 2, 2, M]`` (pair, order,
    ``M``), each route's rows in its own order: route ``k`` is pair ``k // 2``, order ``k mod 2``.

    The projection is per position, so one matmul over the row-major map serves all four routes, and only its
    ``4 M`` outputs a position (32 in VMamba-T, against ``2 E`` = 192 inputs) are reordered for the column-major
    routes: no route-major copy of the stacked orders, which a batched matmul over routes would need."""
    routes = F.linear(x, x_proj_weight.flatten(0, 1)).unflatten(-1, (2, 2, -1))
    rows = routes[..., 0, :].flatten(1, 2)
    cols = routes[..., 1, :].transpose(1, 2).flatten(1, 2)
    return torch.stack([rows, cols], dim=3)


def _pair_block_diagonals(weight: torch.Tensor) -> torch.Tensor:
    """The routes' ``dt_proj`` weights ``[4, E, R]`` -> ``[2, 2E, 2R]``: each pair's two weights on the diagonal of
    one matrix, both pairs in three launches (``torch.block_diag`` takes three a pair)."""
    pairs = weight.unflatten(0, (2, 2))
    rank = weight.shape[-1]
    return torch.cat([F.pad(pairs[:, 0], (0, rank)), F.pad(pairs[:, 1], (rank, 0))], dim=1)


class SS2D(nn.Module):
    """VMamba's 2D selective-scan mixer (module docstring): ``[B, H, W, dim]`` -> ``[B, H, W, dim]``.

    Args:
        dim: model channels ``C``.
        d_state: ``N``, state size per inner channel (1 in VMamba v2, 16 in v0).
        ssm_ratio: ``E = int(ssm_ratio * dim)`` inner channels per route.
        dt_rank: rank ``R`` of the ``dt`` projection; ``"auto"`` is ``ceil(dim / 16)``.
        gate: the ``z`` branch of VMamba v0 (``forward_type="v0"``); v2 (``"v05_noz"``) has none.
        conv_bias: bias in the depthwise conv (v0 True, v2 False).
        dt_min, dt_max, dt_init_floor: the ``dt`` initialisation (mamba-ssm's).
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 1,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        gate: bool = False,
        conv_bias: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.d_inner = int(ssm_ratio * dim)
        if self.d_inner < 1 or d_state < 1:
            raise ValueError(f"need ssm_ratio * dim >= 1 and d_state >= 1, got {ssm_ratio} * {dim} and {d_state}")
        self.d_state = d_state
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else dt_rank
        self.gate = gate
        self.in_proj = nn.Linear(dim, self.d_inner * (2 if gate else 1), bias=False)
        self.conv2d = nn.Conv2d(self.d_inner, self.d_inner, 3, padding=1, groups=self.d_inner, bias=conv_bias)
        x_projs = [nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False) for _ in range(ROUTES)]
        self.x_proj_weight = nn.Parameter(torch.stack([p.weight.detach() for p in x_projs]))
        dt_projs = [_dt_projection(self.d_inner, self.dt_rank, dt_min, dt_max, dt_init_floor) for _ in range(ROUTES)]
        self.dt_projs_weight = nn.Parameter(torch.stack([weight for weight, _ in dt_projs]))
        self.dt_projs_bias = nn.Parameter(torch.stack([bias for _, bias in dt_projs]))
        a_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32))
        self.A_logs = nn.Parameter(a_log.repeat(ROUTES * self.d_inner, 1))
        self.Ds = nn.Parameter(torch.ones(ROUTES * self.d_inner))
        self.out_norm = LayerNorm(self.d_inner, to_autocast_dtype=True)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, H, W, dim]`` -> ``[B, H, W, dim]``."""
        x = self.in_proj(x)
        x, z = x.chunk(2, dim=-1) if self.gate else (x, None)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)
        y = self.out_norm(self._scan(x))
        if z is not None:
            y = y * F.silu(z)
        return self.out_proj(y)

    def _scan(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, E]`` -> ``[B, H, W, E]``: routes 0 and 1 forward and routes 2 and 3 backward over the two
        orders, each pair as G = 2 groups of one selective scan. What both pairs need is formed once (``A``, the
        ``dt`` weights, ``B`` and ``C`` in the scan's layout): a few launches fewer a block, which eager inference
        at small batches pays for on the host."""
        batch, height, width, channels = x.shape
        u = cross_scan(x).flatten(2)
        projections = _route_projections(x, self.x_proj_weight)
        low_rank = projections[..., : self.dt_rank].permute(2, 0, 1, 3, 4).contiguous()  # [pair, B, L, order, R]
        readins = projections[..., self.dt_rank :].unflatten(-1, (2, self.d_state))
        readins = readins.permute(2, 4, 0, 1, 3, 5).contiguous()  # [pair, B|C, B, L, order, N]
        A = -torch.exp(self.A_logs.float())
        dt_weights = _pair_block_diagonals(self.dt_projs_weight)
        forward, backward = (
            self._scan_pair(u, low_rank[pair], dt_weights[pair], A, *readins[pair], pair) for pair in (0, 1)
        )
        return cross_merge((forward + backward).view(batch, height * width, 2, channels), height, width)

    def _scan_pair(
        self, u: torch.Tensor, dt: torch.Tensor, dt_weight: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
        C: torch.Tensor, pair: int,
    ) -> torch.Tensor:  # fmt: skip
        """Routes ``2 pair`` and ``2 pair + 1`` over ``u [B, L, 2E]`` (the two orders) with their low-rank ``dt``
        and ``B, C`` (``[B, L, 2, R]``, ``[B, L, 2, N]``, contiguous) and ``A [4E, N]`` of all routes -> ``[B, L,
        2E]``; pair 1 scans backwards. ``dt_proj`` of both routes is one matmul against their block-diagonal
        ``dt_weight [2E, 2R]``, which writes ``dt`` in ``u``'s layout."""
        channels = u.shape[-1] // 2
        routes_channels = slice(2 * pair * channels, (2 * pair + 2) * channels)
        y, _ = selective_scan(
            u,
            F.linear(dt.flatten(2), dt_weight),
            A[routes_channels],
            B,
            C,
            self.Ds[routes_channels].float(),
            dt_bias=self.dt_projs_bias[2 * pair : 2 * pair + 2].flatten().float(),
            dt_softplus=True,
            reverse=pair == 1,
        )
        return y
