"""Long-horizon Moving-MNIST (Srivastava et al. 2015, as generated for ConvS5): digits bouncing in a square frame.

Each digit starts at a uniform position with a uniform direction and moves ``step_length`` of the free range
(``image_size - digit_size`` pixels) per frame, reflecting at the borders; positions are floored to whole pixels,
frames are the pixelwise maximum of the digits, and frame 0 is after the first step (as the official
``moving_mnist.py``). Sequences are generated on demand from ``(seed, index)``, so a data set of any length is
fixed by its seed and costs no memory.

Digits come from MNIST idx files (``load_mnist_digits``) or, with no file, from scikit-learn's bundled 8x8 digits
(``load_sklearn_digits``), upscaled to MNIST's framing (a 20x20 digit centred in 28x28).
"""

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

MNIST_SIZE = 28
IDX_IMAGES_MAGIC = 2051


def load_mnist_digits(path: str | Path) -> np.ndarray:
    """Images of an MNIST idx3 file (``*-images-idx3-ubyte``, gzipped or not): ``uint8 [N, 28, 28]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MNIST images file at {path} (expected e.g. t10k-images-idx3-ubyte.gz)")
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = np.frombuffer(raw[:16].ljust(16, b"\0"), dtype=">i4")
    if magic != IDX_IMAGES_MAGIC or len(raw) != 16 + count * rows * cols:
        raise ValueError(
            f"{path} is not an idx3 image file (magic {magic}, expected {IDX_IMAGES_MAGIC}; {len(raw)} bytes)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)


def load_sklearn_digits() -> np.ndarray:
    """scikit-learn's 1,797 bundled 8x8 digits (values 0..16), upscaled bilinearly to 20x20 and centred in 28x28
    like MNIST's: ``uint8 [1797, 28, 28]``. Needs scikit-learn (no download)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "Moving-MNIST without an MNIST file uses scikit-learn's bundled digits: install scikit-learn, "
            "or pass the path of an MNIST idx images file"
        ) from error
    small = torch.from_numpy(load_digits().images).float()[:, None] * (255 / 16)
    digits = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False)
    return F.pad(digits, (4, 4, 4, 4))[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def resize_digits(digits: np.ndarray, digit_size: int) -> np.ndarray:
    """``uint8 [N, s, s] -> uint8 [N, digit_size, digit_size]`` (antialiased bilinear; a no-op at the same size)."""
    if digits.shape[-1] == digit_size:
        return digits
    resized = F.interpolate(
        torch.from_numpy(digits).float()[:, None], size=(digit_size, digit_size), mode="bilinear", antialias=True
    )
    return resized[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def bouncing_trajectory(
    n_frames: int, max_offset: int, step_length: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Top and left pixel offsets ``int [n_frames]`` in ``[0, max_offset]`` of one digit bouncing in the unit square
    scaled to ``max_offset`` pixels, moving ``step_length`` per frame."""
    y, x, theta = rng.random(), rng.random(), 2 * np.pi * rng.random()
    v_y, v_x = np.sin(theta), np.cos(theta)
    tops, lefts = np.empty(n_frames), np.empty(n_frames)
    for t in range(n_frames):
        y, x = y + v_y * step_length, x + v_x * step_length
        if x <= 0 or x >= 1:
            x, v_x = min(max(x, 0.0), 1.0), -v_x
        if y <= 0 or y >= 1:
            y, v_y = min(max(y, 0.0), 1.0), -v_y
        tops[t], lefts[t] = y, x
    return (max_offset * tops).astype(np.int64), (max_offset * lefts).astype(np.int64)


def render_moving_digits(
    digits: np.ndarray, n_frames: int, image_size: int, step_length: float, rng: np.random.Generator
) -> np.ndarray:
    """One sequence ``uint8 [n_frames, image_size, image_size]`` of the given ``digits [K, d, d]`` bouncing
    independently, each drawn at its own position, overlaps by the pixelwise maximum."""
    digit_size = digits.shape[-1]
    canvas = np.zeros((n_frames, image_size, image_size), dtype=np.uint8)
    for digit in digits:
        tops, lefts = bouncing_trajectory(n_frames, image_size - digit_size, step_length, rng)
        for t, (top, left) in enumerate(zip(tops, lefts, strict=True)):
            window = canvas[t, top : top + digit_size, left : left + digit_size]
            np.maximum(window, digit, out=window)
    return canvas


class MovingMNIST(Dataset):
    """``n_sequences`` sequences of ``n_frames`` frames, each ``float32 [n_frames, 1, image_size, image_size]`` in
    [-1, 1] (``2 x / 255 - 1``, as the official loader), with ``n_digits`` digits drawn from ``digits``.

    Sequence ``i`` depends only on ``(seed, i)`` and ``digits``.

    Args:
        digits: ``uint8 [N, s, s]`` digit images; resized to ``digit_size``.
        n_sequences, n_frames: data set size and sequence length.
        n_digits: digits per sequence (2).
        image_size: frame width in pixels (64).
        digit_size: digit width in pixels (28, MNIST's).
        step_length: displacement per frame as a fraction of the free range (0.15).
        seed: seed of the whole data set.
    """

    def __init__(
        self,
        digits: np.ndarray,
        n_sequences: int,
        n_frames: int,
        n_digits: int = 2,
        image_size: int = 64,
        digit_size: int = MNIST_SIZE,
        step_length: float = 0.15,
        seed: int = 0,
    ) -> None:
        if digits.ndim != 3 or digits.dtype != np.uint8 or digits.shape[1] != digits.shape[2] or len(digits) == 0:
            raise ValueError(f"digits must be uint8 [N, s, s] with N > 0, got {digits.dtype} {digits.shape}")
        if not 0 < digit_size <= image_size:
            raise ValueError(f"need 0 < digit_size <= image_size, got digit_size={digit_size}, image_size={image_size}")
        for name, value in (("n_sequences", n_sequences), ("n_frames", n_frames), ("n_digits", n_digits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not step_length > 0:
            raise ValueError(f"step_length must be positive, got {step_length}")
        self.digits = resize_digits(digits, digit_size)
        self.n_sequences, self.n_frames, self.n_digits = n_sequences, n_frames, n_digits
        self.image_size, self.step_length, self.seed = image_size, step_length, seed

    def __len__(self) -> int:
        return self.n_sequences

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.n_sequences:
            raise IndexError(f"sequence {index} out of range for {self.n_sequences} sequences")
        rng = np.random.default_rng([self.seed, index])
        chosen = self.digits[rng.integers(0, len(self.digits), size=self.n_digits)]
        frames = render_moving_digits(chosen, self.n_frames, self.image_size, self.step_length, rng)
        return torch.from_numpy(frames).float()[:, None].mul_(2 / 255).sub_(1)
