"""Long-horizon Moving-MNIST: MNIST idx reading, bouncing trajectories, digits kept in frame, seeds, splits."""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from lrnn.vision.video.data import MovingMNISTDataModule
from lrnn.vision.video.moving_mnist import (
    MovingMNIST,
    bouncing_trajectory,
    load_mnist_digits,
    load_sklearn_digits,
    render_moving_digits,
)

MNIST_IMAGES = Path("../shared/data/mnist/t10k-images-idx3-ubyte.gz")
needs_mnist = pytest.mark.skipif(not MNIST_IMAGES.is_file(), reason=f"{MNIST_IMAGES} not found (shared data)")
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


@needs_mnist
def test_mnist_idx_file_is_read_as_uint8_digits():
    digits = load_mnist_digits(MNIST_IMAGES)
    assert digits.shape == (10000, 28, 28) and digits.dtype == np.uint8
    mean = digits.astype(np.float64).mean(axis=0)
    rows, cols = np.indices(mean.shape)
    centre = (rows * mean).sum() / mean.sum(), (cols * mean).sum() / mean.sum()
    assert digits.max() == 255 and np.allclose(centre, 13.5, atol=1.0)  # rows in order: MNIST's centred digits


def test_idx_reader_accepts_plain_files_and_refuses_others(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = np.array([2051, 2, 3, 4], dtype=">i4").tobytes() + images.tobytes()
    (tmp_path / "images-idx3-ubyte").write_bytes(raw)
    np.testing.assert_array_equal(load_mnist_digits(tmp_path / "images-idx3-ubyte"), images)
    with gzip.open(tmp_path / "labels.gz", "wb") as f:
        f.write(np.array([2049, 2], dtype=">i4").tobytes() + bytes(2))
    with pytest.raises(ValueError, match="not an idx3 image file"):
        load_mnist_digits(tmp_path / "labels.gz")
    with pytest.raises(FileNotFoundError, match="no MNIST images file"):
        load_mnist_digits(tmp_path / "missing.gz")


def test_trajectory_moves_a_fixed_step_and_bounces_inside_the_range():
    rng = np.random.default_rng(0)
    tops, lefts = bouncing_trajectory(500, 36, 0.15, rng)
    for offsets in (tops, lefts):
        assert offsets.min() == 0 and offsets.max() == 36  # reaches both walls
        assert np.abs(np.diff(offsets)).max() <= int(np.ceil(0.15 * 36)) + 1
    speeds = np.hypot(np.diff(tops), np.diff(lefts))
    assert np.median(speeds) == pytest.approx(0.15 * 36, abs=1.0)


def test_digits_stay_whole_inside_the_frame():
    block = np.full((1, 10, 10), 255, dtype=np.uint8)
    video = render_moving_digits(block, 300, 32, 0.15, np.random.default_rng(1))
    assert video.shape == (300, 32, 32)
    assert np.all((video == 255).sum(axis=(1, 2)) == 100)  # never clipped by the border
    two = render_moving_digits(np.concatenate([block, block]), 300, 32, 0.15, np.random.default_rng(2))
    lit = (two == 255).sum(axis=(1, 2))
    assert lit.min() >= 100 and lit.max() <= 200 and lit.max() == 200


def test_dataset_is_fixed_by_its_seed_and_scaled_to_minus_one_one():
    digits = np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    a = MovingMNIST(digits, n_sequences=3, n_frames=10, image_size=64, seed=5)
    b = MovingMNIST(digits, n_sequences=10, n_frames=10, image_size=64, seed=5)
    c = MovingMNIST(digits, n_sequences=3, n_frames=10, image_size=64, seed=6)
    sequence = a[1]
    assert sequence.shape == (10, 1, 64, 64) and sequence.dtype == torch.float32
    assert sequence.min() == -1 and sequence.max() <= 1
    torch.testing.assert_close(sequence, b[1], atol=0, rtol=0)
    assert not torch.equal(sequence, c[1]) and not torch.equal(sequence, a[2])
    with pytest.raises(IndexError):
        a[3]


def test_digits_are_resized_to_fit_small_frames_and_sizes_are_checked():
    digits = np.full((4, 28, 28), 255, dtype=np.uint8)
    video = MovingMNIST(digits, n_sequences=1, n_frames=50, n_digits=1, image_size=16, digit_size=7)[0]
    assert video.shape == (50, 1, 16, 16) and torch.all((video == 1).sum(dim=(1, 2, 3)) == 49)
    with pytest.raises(ValueError, match="digit_size <= image_size"):
        MovingMNIST(digits, n_sequences=1, n_frames=5, image_size=16)
    with pytest.raises(ValueError, match=r"uint8 \[N, s, s\]"):
        MovingMNIST(digits.astype(np.float32), n_sequences=1, n_frames=5)


@pytest.mark.skipif(not HAS_SKLEARN, reason="scikit-learn is not installed")
def test_sklearn_digits_are_upscaled_to_mnist_framing():
    digits = load_sklearn_digits()
    assert digits.shape == (1797, 28, 28) and digits.dtype == np.uint8 and digits.max() > 200
    assert digits[:, :4].max() == 0 and digits[:, :, -4:].max() == 0


@pytest.mark.skipif(HAS_SKLEARN, reason="scikit-learn is installed")
def test_without_a_path_or_scikit_learn_the_error_says_what_to_do():
    with pytest.raises(ImportError, match="install scikit-learn, or pass the path of an MNIST idx images file"):
        load_sklearn_digits()


@needs_mnist
def test_data_module_batches_and_held_out_digits():
    data = MovingMNISTDataModule(
        path=str(MNIST_IMAGES),
        image_size=32,
        digit_size=14,
        seq_len=6,
        eval_seq_len=9,
        n_train=4,
        n_val=2,
        n_test=2,
        batch_size=2,
        seed=3,
    )
    data.setup("fit")
    assert next(iter(data.train_dataloader())).shape == (2, 6, 1, 32, 32)
    assert next(iter(data.test_dataloader())).shape == (2, 9, 1, 32, 32)
    train = {d.tobytes() for d in data.splits["train"].digits}
    held_out = {d.tobytes() for d in data.splits["test"].digits}
    assert len(held_out) > 900 and not train & held_out
    again = MovingMNISTDataModule(**data.hparams)
    again.setup("fit")
    torch.testing.assert_close(again.splits["val"][1], data.splits["val"][1], atol=0, rtol=0)
