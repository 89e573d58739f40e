"""Image classification through timm models: a CIFAR-10 data module with timm's transforms, and a LightningModule
with mixup/cutmix."""

from .data import CIFAR10DataModule
from .lit import ImageClassifier

__all__ = ["CIFAR10DataModule", "ImageClassifier"]
