"""HiPPO transition matrices (Gu et al. 2020), the initialisation of the LSSL's continuous state-space model.

Both are written in the orthonormal Legendre basis, for the convention ``ẋ = A x + B u`` (``x [N]``, ``u`` scalar),
with ``R_n = sqrt(2n + 1)``:

* LegS (scaled Legendre, memory of the whole history)::

      A[n, k] = -R_n R_k  (n > k),   -(n + 1)  (n = k),   0  (n < k);      B[n] = R_n

* LegT (translated Legendre, memory of a sliding window of length 1 in the units of the time step)::

      A[n, k] = -R_n R_k  (n >= k),   -R_n R_k (-1)^(n - k)  (n < k);      B[n] = R_n

  which is the HiPPO paper's ``A = -(2n+1)[(-1)^(n-k) if n >= k else 1]``, ``B = (2n+1)(-1)^n`` after the
  change of basis ``diag(R)^{-1}`` and the sign flip ``diag((-1)^n)`` (similarity transforms: same dynamics).
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
