"""Long-horizon video prediction: ConvS5 and its ConvLSTM baseline on Moving-MNIST."""

from ...core.hippo import dplr_hippo
from .convlstm import ConvLSTMCell, ConvLSTMLayer, ConvLSTMVideo
from .convs5 import ConvS5Layer, ConvS5SSM, ConvS5Video, ResNetCDBlock
from .predictor import VideoPredictor

__all__ = [
    "ConvLSTMCell",
    "ConvLSTMLayer",
    "ConvLSTMVideo",
    "ConvS5Layer",
    "ConvS5SSM",
    "ConvS5Video",
    "ResNetCDBlock",
    "VideoPredictor",
    "dplr_hippo",
]
