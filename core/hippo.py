"""HiPPO initialisations (Gu et al. 2020): the LegS and LegT transition matrices (LSSL) and the diagonalised
normal part of LegS (HiPPO-DPLR, S5 and ConvS5).

Both matrices are written in the orthonormal Legendre basis, for the convention ``ẋ = A x + B u`` (``x [N]``,
``u`` scalar), with ``R_n = sqrt(2n + 1)``:

* LegS (scaled Legendre, memory of the whole history)::

      A[n, k] = -R_n R_k  (n > k),   -(n + 1)  (n = k),   0  (n < k);      B[n] = R_n

* LegT (translated Legendre, memory of a sliding window of length 1 in the units of the time step)::

      A[n, k] = -R_n R_k  (n >= k),   -R_n R_k (-1)^(n - k)  (n < k);      B[n] = R_n

  which is the HiPPO paper's ``A = -(2n+1)[(-1)^(n-k) if n >= k else 1]``, ``B = (2n+1)(-1)^n`` after the
  change of basis ``diag(R)^{-1}`` and the sign flip ``diag((-1)^n)`` (similarity transforms: same dynamics).

HiPPO-DPLR: adding ``p p^T`` with ``p_n = sqrt(n + 1/2)`` to LegS makes it normal, ``S = -I/2 + K`` with ``K``
skew-symmetric, so ``S = V diag(Lambda) V^*`` with ``Lambda = -1/2 + i omega`` (``omega`` the eigenvalues of the
Hermitian ``-iK``). The eigenvalues come in conjugate pairs; S5 keeps one of each pair (the ``N/2`` with
``omega < 0``) and reads the state out as ``2 Re(C x)``, which equals the full real system.
"""

import torch

MEASURES = ("legs", "legt")


def hippo(measure: str, N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A [N, N], B [N])`` of HiPPO ``measure`` (``"legs"`` or ``"legt"``) with ``N`` state dimensions."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise ValueError(f"N must be a positive int, got {N!r}")
    n = torch.arange(N, dtype=torch.float64)
    R = (2 * n + 1).sqrt()
    row, col = n[:, None], n[None, :]
    if measure == "legs":
        A = torch.where(row > col, -R[:, None] * R[None, :], torch.zeros(()))
        A = A - torch.diag(n + 1)
    else:
        sign = torch.where(row >= col, torch.ones(()), (-1.0) ** (row - col))
        A = -R[:, None] * R[None, :] * sign
    return A.to(dtype), R.to(dtype)


def dplr_hippo(state_size: int, blocks: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The conjugate half of HiPPO-DPLR, repeated on ``blocks`` diagonal blocks (S5's ``blocks``, 1 for ConvS5).

    Args:
        state_size: real state size ``N`` (``ssm_size``); each block has ``N / blocks`` states, an even number.
        blocks: diagonal blocks, each initialised with the HiPPO-DPLR of size ``N / blocks``.

    Returns:
        ``Lambda [P]`` and the eigenvectors ``V [N, P]`` (block-diagonal), both complex128, ``P = N / 2``; ``V`` has
        orthonormal columns, so ``V^*`` maps the real basis onto the kept modes.
    """
    if not isinstance(blocks, int) or blocks < 1:
        raise ValueError(f"blocks must be a positive int, got {blocks!r}")
    if not isinstance(state_size, int) or state_size < 2 or state_size % (2 * blocks):
        raise ValueError(f"state_size must be a positive multiple of 2 * blocks = {2 * blocks}, got {state_size!r}")
    size = state_size // blocks
    legs, _ = hippo("legs", size)
    low_rank = torch.sqrt(torch.arange(size, dtype=torch.float64) + 0.5)
    normal = legs + torch.outer(low_rank, low_rank)
    skew = (normal - normal.T) / 2
    omega, eigenvectors = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    half = size // 2
    lam = torch.complex(torch.diagonal(normal).mean().expand(half), omega[:half])
    return lam.repeat(blocks), torch.block_diag(*[eigenvectors[:, :half]] * blocks)
