import pytest
import torch
from lrnn.pointcloud.bev_backbone import BEVBackbone


@pytest.mark.parametrize("height, width", [(12, 16), (13, 9)])
def test_output_keeps_the_resolution_and_concatenates_both_branches(height, width):
    backbone = BEVBackbone(8, channels=(6, 10), layers=(1, 0), upsample_channels=5)
    bev = torch.randn(2, 8, height, width, requires_grad=True)
    out = backbone(bev)
    assert out.shape == (2, 10, height, width) and backbone.out_channels == 10
    out.sum().backward()
    assert all(parameter.grad is not None for parameter in backbone.parameters())


def test_rejects_wrong_channels_and_bad_arguments():
    with pytest.raises(ValueError, match=r"bev must be \[B, 8, H, W\]"):
        BEVBackbone(8)(torch.randn(1, 4, 6, 6))
    with pytest.raises(ValueError, match="two numbers"):
        BEVBackbone(8, channels=(4, 8, 16))
    with pytest.raises(ValueError, match="positive widths"):
        BEVBackbone(8, layers=(-1, 1))
