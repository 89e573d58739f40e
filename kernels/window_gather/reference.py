"""The definition of ``window_gather`` and ``window_scatter``: both are the row gather ``out[i] = src[index[i]]``.

Its gradient adds each output row back into the row it was read from::

    d_src[j] = sum over {i : index[i] = j} of d_out[i]

so a row read into several places (a voxel and its padding copies) collects every term, and a row never read
(a padding slot, seen from the scatter) gets zero. This PyTorch face is the path every device takes by default.
"""

import torch


def gather_rows_reference(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src [M, C]`` read at ``index [K]`` (int32 or int64) -> ``[K, C]``, differentiable: autograd's backward of
    indexing is ``index_put_(accumulate=True)``, the sum above."""
    return src[index]
