"""``MovingMNISTDataModule``: long-horizon Moving-MNIST generated on demand with fixed seeds."""

import numpy as np

from ...datamodules import SplitsDataModule
from .moving_mnist import MovingMNIST, load_mnist_digits, load_sklearn_digits


class MovingMNISTDataModule(SplitsDataModule):
    """Training sequences of ``seq_len`` frames and evaluation sequences of ``eval_seq_len`` frames (a context plus
    the frames to roll out past the training length), batches ``float32 [B, T, 1, image_size, image_size]`` in
    [-1, 1].

    The digits are shuffled with ``seed`` and split: the last ``heldout_fraction`` of them only ever appear in
    the validation and test sequences. The three splits use the seeds ``seed``, ``seed + 1`` and ``seed + 2``, so
    every process of a distributed run sees the same data.

    Args:
        path: an MNIST idx images file (``train-images-idx3-ubyte.gz`` for the paper's setting); None uses
            scikit-learn's bundled 8x8 digits, upscaled (no download).
        n_digits, image_size, digit_size, step_length: see ``MovingMNIST`` (2, 64, 28, 0.15 officially).
        seq_len: frames per training sequence (300 or 600 in the paper).
        eval_seq_len: frames per validation and test sequence (500, 900 or 1300 in the paper).
        n_train, n_val, n_test: sequences per split (one training epoch is ``n_train`` sequences).
        heldout_fraction: fraction of the digits kept for validation and test.
        seed: seed of the digit split and of the training sequences.
        batch_size: sequences per batch (per process), for every split.
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        path: str | None = None,
        n_digits: int = 2,
        image_size: int = 64,
        digit_size: int = 28,
        step_length: float = 0.15,
        seq_len: int = 300,
        eval_seq_len: int = 500,
        n_train: int = 10000,
        n_val: int = 16,
        n_test: int = 1024,
        heldout_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 8,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not 0 < heldout_fraction < 1:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction}")
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        hp = self.hparams
        digits = load_sklearn_digits() if hp.path is None else load_mnist_digits(hp.path)
        digits = digits[np.random.default_rng(hp.seed).permutation(len(digits))]
        n_heldout = max(1, round(hp.heldout_fraction * len(digits)))
        if n_heldout >= len(digits):
            raise ValueError(f"heldout_fraction={hp.heldout_fraction} leaves no training digits of {len(digits)}")
        pools = {"train": digits[:-n_heldout], "val": digits[-n_heldout:], "test": digits[-n_heldout:]}
        sizes = {
            "train": (hp.n_train, hp.seq_len),
            "val": (hp.n_val, hp.eval_seq_len),
            "test": (hp.n_test, hp.eval_seq_len),
        }
        self.splits = {
            split: MovingMNIST(
                pools[split], n, frames, hp.n_digits, hp.image_size, hp.digit_size, hp.step_length, hp.seed + i
            )
            for i, (split, (n, frames)) in enumerate(sizes.items())
        }
