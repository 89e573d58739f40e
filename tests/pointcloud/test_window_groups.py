import pytest
import torch
from lrnn.pointcloud.window_groups import group_windows

SPATIAL_SHAPE = (4, 30, 40)  # (Z, Y, X)
WINDOW = (13, 13, 4)  # (w_x, w_y, w_z)
GROUP_SIZE = 16


def random_coords(counts: list[int], seed: int = 0) -> torch.Tensor:
    """Unique voxel coordinates ``[N, 4]`` (batch, z, y, x), ``counts[b]`` of them in sample ``b``, shuffled."""
    generator = torch.Generator().manual_seed(seed)
    z, y, x = SPATIAL_SHAPE
    rows = []
    for b, n in enumerate(counts):
        flat = torch.randperm(z * y * x, generator=generator)[:n]
        rows.append(torch.stack([torch.full_like(flat, b), flat // (y * x), flat // x % y, flat % x], dim=1))
    coords = torch.cat(rows)
    return coords[torch.randperm(len(coords), generator=generator)].int()


def lion_order_tuple(row: list[int], axis: str, shift: bool) -> tuple[int, ...]:
    """The tuple LION sorts by, written out for one voxel."""
    b, z, y, x = row
    w_x, w_y, w_z = WINDOW
    s = (w_x // 2, w_y // 2, w_z // 2) if shift else (0, 0, 0)
    x, y, z = x + s[0], y + s[1], z + s[2]
    window = {"x": x // w_x, "y": y // w_y, "z": z // w_z}
    inside = {"x": x % w_x, "y": y % w_y, "z": z % w_z}
    first, second = ("x", "y") if axis == "x" else ("y", "x")
    return (b, window[first], window[second], window["z"], inside[first], inside[second], inside["z"])


COUNTS = [37, 0, 5, 32]  # a partial last group, an empty sample, fewer voxels than a group, exact groups


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("shift", [False, True])
def test_groups_follow_the_window_order_and_respect_batches(axis, shift):
    coords = random_coords(COUNTS)
    groups = group_windows(coords, len(COUNTS), SPATIAL_SHAPE, WINDOW, GROUP_SIZE, axis, shift)
    # padding counts: each sample rounded up to whole groups
    assert groups.num_groups == 3 + 0 + 1 + 2
    slots = groups.voxel_at_slot.view(-1, GROUP_SIZE)
    # reading every voxel from its real slot lists them in LION's order
    real = torch.zeros(len(groups.voxel_at_slot), dtype=torch.bool)
    real[groups.slot_of_voxel] = True
    in_slot_order = groups.voxel_at_slot[real].tolist()
    tuples = [lion_order_tuple(coords[i].tolist(), axis, shift) for i in range(len(coords))]
    assert in_slot_order == sorted(range(len(coords)), key=tuples.__getitem__)
    # no group mixes batch samples; real slots come first in each sample's last group
    for group in slots:
        assert len(set(coords[group, 0].tolist())) == 1
    assert real.view(-1, GROUP_SIZE).sum(1).tolist() == [16, 16, 5, 5, 16, 16]


def test_padding_duplicates_the_previous_group_or_the_samples_own_voxels():
    coords = random_coords(COUNTS)
    groups = group_windows(coords, len(COUNTS), SPATIAL_SHAPE, WINDOW, GROUP_SIZE, "x")
    slots = groups.voxel_at_slot.view(-1, GROUP_SIZE)
    # sample 0: 37 voxels, its third group holds 5 real ones then slots 5..15 of its second group
    assert torch.equal(slots[2, 5:], slots[1, 5:])
    # sample 2: 5 voxels, one group: its own voxels repeated from the first
    assert slots[3].tolist() == [slots[3, i % 5].item() for i in range(GROUP_SIZE)]


def test_gather_then_scatter_is_the_identity():
    coords = random_coords(COUNTS, seed=1)
    features = torch.randn(len(coords), 8)
    for axis in ("x", "y"):
        groups = group_windows(coords, len(COUNTS), SPATIAL_SHAPE, WINDOW, GROUP_SIZE, axis, shift=True)
        grouped = groups.gather(features)
        assert grouped.shape == (groups.num_groups, GROUP_SIZE, 8)
        assert torch.equal(groups.scatter(grouped), features)


def test_empty_input_and_bad_arguments():
    groups = group_windows(torch.zeros(0, 4, dtype=torch.int32), 2, SPATIAL_SHAPE, WINDOW, GROUP_SIZE, "y")
    assert groups.gather(torch.zeros(0, 3)).shape == (0, GROUP_SIZE, 3)
    assert groups.scatter(torch.zeros(0, GROUP_SIZE, 3)).shape == (0, 3)
    with pytest.raises(ValueError, match="axis"):
        group_windows(random_coords([3]), 1, SPATIAL_SHAPE, WINDOW, GROUP_SIZE, "z")
    with pytest.raises(ValueError, match="batch_size"):
        group_windows(random_coords([3, 3]), 1, SPATIAL_SHAPE, WINDOW, GROUP_SIZE, "x")
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        group_windows(torch.zeros(3, 3), 1, SPATIAL_SHAPE, WINDOW, GROUP_SIZE, "x")
