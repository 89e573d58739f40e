"""LION's window partition and equal-size grouping (``FlattenedWindowMapping``, ``win_version='v2'``).

Windows are only a sort key. For a voxel at ``(b, z, y, x)`` and windows ``(w_x, w_y, w_z)`` voxels wide, with the
coordinates first offset by ``s = w // 2`` per axis when ``shift`` is set and by ``s = w`` otherwise (LION's code;
the one-window offset changes no window boundary)::

    window  (i_x, i_y, i_z) = (x + s_x) // w_x, ...        inside (j_x, j_y, j_z) = (x + s_x) % w_x, ...
    x order: sort by (b, i_x, i_y, i_z, j_x, j_y, j_z)      y order: sort by (b, i_y, i_x, i_z, j_y, j_x, j_z)

The sorted sequence of each batch sample is cut into groups of ``group_size`` voxels; a group may span several
windows (FlatFormer's equal-size grouping) but never two samples. Each sample's count is rounded up to a multiple
of ``group_size``: the empty slots at the end of its last group are filled with the voxels at the same slots of
the group before it, or, for a sample with fewer voxels than one group, with its own voxels repeated from its
first. Scattering back reads each voxel from its one real slot, so the padding copies are dropped.

Where the slots sit depends only on how many voxels each sample holds, not on the window order: ``group_layout``
computes it once (one read on the host, of the slot count ``G * group_size`` that sizes the groups) and both orders
of a LION layer, or every layer on the same voxels, reuse it. Nothing else here waits for the device.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..kernels.window_gather import window_gather, window_scatter


@dataclass(frozen=True)
class WindowGroups:
    """Index maps between ``N`` voxels and ``G`` groups of ``group_size`` slots.

    ``voxel_at_slot [G * group_size]``: the voxel read into each slot (padding slots repeat voxels).
    ``slot_of_voxel [N]``: the one real slot holding each voxel.
    """

    voxel_at_slot: torch.Tensor
    slot_of_voxel: torch.Tensor
    group_size: int

    @property
    def num_groups(self) -> int:
        return len(self.voxel_at_slot) // self.group_size

    def gather(self, features: torch.Tensor) -> torch.Tensor:
        """Voxel ``features [N, C]`` to grouped ``[G, group_size, C]``; a padding copy's gradient adds to its voxel's
        (``lrnn.kernels.window_gather``)."""
        grouped = window_gather(features, self.voxel_at_slot)
        return grouped.view(self.num_groups, self.group_size, features.shape[-1])

    def scatter(self, grouped: torch.Tensor) -> torch.Tensor:
        """Grouped ``[G, group_size, C]`` back to voxel features ``[N, C]``, padding copies dropped (they get zero
        gradient)."""
        return window_scatter(grouped.reshape(-1, grouped.shape[-1]), self.slot_of_voxel)


def window_sort_key(
    coords: torch.Tensor,
    spatial_shape: Sequence[int],
    window_shape: Sequence[int],
    axis: str,
    shift: bool = False,
) -> torch.Tensor:
    """The int64 key ``[N]`` whose ascending order is LION's ``axis`` ("x" or "y") order of ``coords [N, 4]``
    (batch, z, y, x) on a grid ``spatial_shape (Z, Y, X)`` with windows ``window_shape (w_x, w_y, w_z)``."""
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    coords = coords.long()
    w_x, w_y, w_z = window_shape
    s_x, s_y, s_z = (w_x // 2, w_y // 2, w_z // 2) if shift else (w_x, w_y, w_z)
    size_z, size_y, size_x = spatial_shape
    n_x, n_y, n_z = math.ceil(size_x / w_x) + 1, math.ceil(size_y / w_y) + 1, math.ceil(size_z / w_z) + 1
    batch, z, y, x = coords[:, 0], coords[:, 1] + s_z, coords[:, 2] + s_y, coords[:, 3] + s_x
    window_x, window_y, window_z = x // w_x, y // w_y, z // w_z
    inside_x, inside_y, inside_z = x % w_x, y % w_y, z % w_z
    if axis == "x":
        window = (window_x * n_y + window_y) * n_z + window_z
        inside = (inside_x * w_y + inside_y) * w_z + inside_z
    else:
        window = (window_y * n_x + window_x) * n_z + window_z
        inside = (inside_y * w_x + inside_x) * w_z + inside_z
    return (batch * (n_x * n_y * n_z) + window) * (w_x * w_y * w_z) + inside


def bin_counts(index: torch.Tensor, num_bins: int) -> torch.Tensor:
    """``torch.bincount(index, minlength=num_bins)`` ``[num_bins]`` int64 for ``index [N]`` in ``[0, num_bins)``,
    without the read of the index range on the host that ``bincount`` makes on CUDA."""
    index = index.long()
    return torch.zeros(num_bins, dtype=torch.long, device=index.device).scatter_add_(0, index, torch.ones_like(index))


@dataclass(frozen=True)
class GroupLayout:
    """The slots of ``N`` voxels sorted by batch sample (in any order within a sample) in groups of ``group_size``.

    ``sorted_at_slot [G * group_size]``: the sorted position read into each slot (padding slots repeat positions).
    ``slot_of_sorted [N]``: the one real slot of each sorted position.
    """

    sorted_at_slot: torch.Tensor
    slot_of_sorted: torch.Tensor
    group_size: int


def _check_coords(coords: torch.Tensor) -> None:
    if coords.ndim != 2 or coords.shape[1] != 4:
        raise ValueError(f"coords must be [N, 4] (batch, z, y, x), got shape {tuple(coords.shape)}")


def sample_slots(coords: torch.Tensor, batch_size: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Voxels per batch sample ``counts [B]`` of ``coords [N, 4]``, the same rounded up to whole groups
    ``padded_counts [B]``, and their sum, the slot count, read on the host: the one read of ``group_layout``, which
    also brings the number of batch indices outside ``[0, batch_size)`` for the check."""
    if group_size < 1:
        raise ValueError(f"group_size must be positive, got {group_size}")
    _check_coords(coords)
    batch = coords[:, 0].long()
    outside = (batch < 0) | (batch >= batch_size)
    counts_and_outside = bin_counts(torch.where(outside, batch_size, batch), batch_size + 1)
    counts = counts_and_outside[:batch_size]
    padded_counts = (counts + group_size - 1) // group_size * group_size
    num_slots, num_outside = torch.stack([padded_counts.sum(), counts_and_outside[batch_size]]).tolist()
    if num_outside:
        raise ValueError(f"coords hold {num_outside} batch indices outside [0, batch_size = {batch_size})")
    return counts, padded_counts, num_slots


def group_layout(coords: torch.Tensor, batch_size: int, group_size: int) -> GroupLayout:
    """The ``GroupLayout`` of the voxels ``coords [N, 4]`` (batch, z, y, x), the same for every window order; one
    host read (``sample_slots``)."""
    counts, padded_counts, num_slots = sample_slots(coords, batch_size, group_size)
    device = coords.device
    starts = torch.cumsum(counts, 0) - counts
    padded_starts = torch.cumsum(padded_counts, 0) - padded_counts

    samples = torch.arange(batch_size, device=device)
    sample_of_slot = torch.repeat_interleave(samples, padded_counts, output_size=num_slots)
    offset = torch.arange(num_slots, device=device) - padded_starts[sample_of_slot]
    count = counts[sample_of_slot]
    is_padding = offset >= count
    from_previous_group = offset - group_size
    from_own_voxels = (offset - count) % count.clamp(min=1)
    offset = torch.where(
        is_padding,
        torch.where(padded_counts[sample_of_slot] > group_size, from_previous_group, from_own_voxels),
        offset,
    )
    sorted_at_slot = starts[sample_of_slot] + offset

    sample_of_sorted = torch.repeat_interleave(samples, counts, output_size=len(coords))
    slot_of_sorted = (
        torch.arange(len(coords), device=device) - starts[sample_of_sorted] + padded_starts[sample_of_sorted]
    )
    return GroupLayout(sorted_at_slot, slot_of_sorted, group_size)


def group_windows(
    coords: torch.Tensor,
    batch_size: int,
    spatial_shape: Sequence[int],
    window_shape: Sequence[int],
    group_size: int,
    axis: str,
    shift: bool = False,
    layout: GroupLayout | None = None,
) -> WindowGroups:
    """Sort the voxels ``coords [N, 4]`` (batch, z, y, x) in LION's ``axis`` order and cut each batch sample's
    sequence into groups of ``group_size`` (see the module docstring). Coordinates must be unique. ``layout``:
    ``group_layout(coords, batch_size, group_size)``, computed here when not given."""
    _check_coords(coords)
    if len(spatial_shape) != 3 or len(window_shape) != 3 or min(window_shape) < 1:
        raise ValueError(
            f"spatial_shape (Z, Y, X) and window_shape (w_x, w_y, w_z) need 3 sizes each, "
            f"got {list(spatial_shape)} and {list(window_shape)}"
        )
    order = torch.argsort(window_sort_key(coords, spatial_shape, window_shape, axis, shift))
    layout = group_layout(coords, batch_size, group_size) if layout is None else layout
    if layout.group_size != group_size or len(layout.slot_of_sorted) != len(coords):
        raise ValueError(
            f"layout is for {len(layout.slot_of_sorted)} voxels in groups of {layout.group_size}, not for "
            f"{len(coords)} voxels in groups of {group_size}"
        )
    voxel_at_slot = order[layout.sorted_at_slot]
    slot_of_voxel = torch.empty_like(layout.slot_of_sorted).scatter_(0, order, layout.slot_of_sorted)
    return WindowGroups(voxel_at_slot, slot_of_voxel, group_size)
