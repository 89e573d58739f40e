"""CIFAR-10 for the image backbones, from a path, with timm's training and evaluation transforms.

``root`` is either torchvision's ``cifar-10-batches-py`` layout (the folder that holds it; nothing is downloaded)
or an ``.npz`` file with ``x [N, 32, 32, 3]`` uint8, ``y [N]`` and ``classes`` (such as the 1,000-image subset in
``../shared/data/cifar10/``), which is split into training and validation parts by ``val_fraction``.
"""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from timm.data import create_transform
from torch.utils.data import DataLoader, Dataset

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class ArrayImages(Dataset):
    """``(transform(image), label)`` pairs from ``images [N, H, W, 3]`` uint8 and ``labels [N]``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


def load_cifar10(root: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images ``[N, 32, 32, 3]`` uint8, labels ``[N]`` and class names from torchvision's layout under ``root``."""
    from torchvision.datasets import CIFAR10

    try:
        data = CIFAR10(str(root), train=train, download=False)
    except RuntimeError as error:
        raise FileNotFoundError(
            f"no CIFAR-10 under {root}: expected {Path(root) / 'cifar-10-batches-py'} (torchvision's layout) "
            "or an .npz file with x, y and classes"
        ) from error
    return data.data, np.asarray(data.targets), list(data.classes)


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with np.load(path) as archive:
        missing = {"x", "y", "classes"} - set(archive.files)
        if missing:
            raise KeyError(f"{path} lacks {sorted(missing)}; it needs x [N, H, W, 3] uint8, y [N] and classes")
        images, labels, classes = archive["x"], archive["y"], [str(c) for c in archive["classes"]]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"{path}: x must be uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
    if labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(f"{path}: y must be [N] class indices in [0, {len(classes)}), one per image")
    return images, labels, classes


class CIFAR10DataModule(L.LightningDataModule):
    """CIFAR-10 (or any ``.npz`` of uint8 images) at ``img_size`` with timm's transforms.

    Training images get timm's augmentation (random resized crop, flip, ``auto_augment``, random erasing with
    ``re_prob``); validation and test images are resized and centre-cropped. Batches are
    ``(images [B, 3, img_size, img_size] float32, labels [B])``; the training loader drops its last partial batch
    so that mixup/cutmix always see an even batch.

    Args:
        root: folder holding ``cifar-10-batches-py``, or an ``.npz`` file (see the module docstring).
        img_size: side of the network's input in pixels (CIFAR's 32 is upsampled for ImageNet-shaped models).
        val_fraction: share of an ``.npz`` kept for validation and test (the torchvision layout uses its test set).
        auto_augment: timm's policy string, e.g. ``rand-m9-mstd0.5-inc1`` (RandAugment as in DeiT/Vim), or None.
        re_prob: random-erasing probability.
        seed: seed of the ``.npz`` split.
    """

    def __init__(
        self,
        root: str = "../shared/data/cifar10/cifar10_test_subset_1000.npz",
        img_size: int = 224,
        batch_size: int = 128,
        num_workers: int = 4,
        val_fraction: float = 0.2,
        auto_augment: str | None = "rand-m9-mstd0.5-inc1",
        re_prob: float = 0.25,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        self.save_hyperparameters()
        self.class_names: list[str] = []

    def _transform(self, training: bool):
        hp = self.hparams
        options = {"auto_augment": hp.auto_augment, "re_prob": hp.re_prob} if training else {"crop_pct": 1.0}
        return create_transform(
            hp.img_size, is_training=training, interpolation="bicubic", mean=CIFAR10_MEAN, std=CIFAR10_STD, **options
        )

    def setup(self, stage: str) -> None:
        root = Path(self.hparams.root)
        if root.suffix == ".npz":
            if not root.is_file():
                raise FileNotFoundError(f"no such .npz file: {root}")
            images, labels, self.class_names = load_npz(root)
            order = np.random.default_rng(self.hparams.seed).permutation(len(labels))
            n_val = max(1, round(self.hparams.val_fraction * len(labels)))
            train, held_out = order[n_val:], order[:n_val]
            train_part, eval_part = (images[train], labels[train]), (images[held_out], labels[held_out])
        else:
            *train_part, self.class_names = load_cifar10(root, train=True)
            *eval_part, _ = load_cifar10(root, train=False)
        self.train_set = ArrayImages(*train_part, self._transform(training=True))
        self.eval_set = ArrayImages(*eval_part, self._transform(training=False))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _loader(self, dataset: Dataset, training: bool) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            dataset,
            batch_size=hp.batch_size,
            shuffle=training,
            drop_last=training,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, training=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_set, training=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.eval_set, training=False)
