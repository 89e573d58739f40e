"""The LION forward's host syncs (``host_syncs.py``): counted on the CPU, the reads a CUDA run would wait for."""

import pointcloud_testing
import pytest
import torch
from host_syncs import HostSyncCounter
from lrnn.pointcloud.backbone import LION3DBackbone
from lrnn.pointcloud.lion_layer import LIONLayer

SPATIAL_SHAPE = (8, 80, 80)  # (Z, Y, X)
# LION's structure at small size: blocks of depth 2 (a scale the encoder and the decoder share), voxel generation.
CONFIG = {**pointcloud_testing.SMALL_LION, "DEPTHS": [2, 1], "DIFFUSION": True}
# Inherent, per forward of CONFIG: one group-layout read per scale a LION block runs layers at (3 + 2) and one for
# the output layer, one ``unique`` per voxel merge (3 in the blocks, 2 between stages), one count of the generated
# voxels per merge between stages (2).
BUDGET = 6 + 5 + 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """spconv's CPU convolution needs one torch thread (tests/conftest.py)."""


def test_counter_sees_the_syncing_ops_on_cpu_tensors():
    x = torch.arange(6.0)
    with HostSyncCounter() as syncs:
        x[x > 2].sum().item()
        torch.repeat_interleave(torch.arange(2), torch.tensor([1, 2]))
        torch.repeat_interleave(torch.arange(2), torch.tensor([1, 2]), output_size=3)
        torch.unique(x)
        x.tolist()
        x.cumsum(0)
    ops = sorted(name for _, name in syncs.counts.elements())
    assert ops == [
        "_local_scalar_dense",
        "_unique2",
        "index.Tensor (boolean mask)",
        "lift_fresh",
        "lift_fresh",
        "repeat_interleave.Tensor (no output_size)",
        "tolist",
    ], syncs.table()
    assert syncs.total("tests/pointcloud/test_host_syncs.py") == 7 and syncs.total() == 0


def test_a_lion_layer_reads_the_host_once_for_both_directions():
    coords, features = pointcloud_testing.random_voxels([300, 0, 40], SPATIAL_SHAPE, 8)
    layer = LIONLayer(8, (8, 8, 4), 64, "retnet", {"num_heads": 2}, shift=True)
    with torch.no_grad(), HostSyncCounter() as syncs:
        layer(features, coords, 3, SPATIAL_SHAPE)
    assert syncs.total() == 1, syncs.table()


def test_lion_backbone_forward_stays_within_its_sync_budget():
    torch.manual_seed(0)
    backbone = LION3DBackbone(CONFIG, 16, SPATIAL_SHAPE[::-1])
    coords, features = pointcloud_testing.random_voxels([600, 350], SPATIAL_SHAPE, 16)
    batch = {"voxel_features": features, "voxel_coords": coords, "batch_size": 2}
    with torch.no_grad(), HostSyncCounter() as syncs:
        backbone(batch)
    assert syncs.total() <= BUDGET, f"{syncs.total()} syncs in pointcloud/ (budget {BUDGET}):\n{syncs.table()}"
