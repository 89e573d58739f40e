"""LightningDataModule for dynamical-systems reconstruction: random subsequences of one long time series."""

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .systems import lorenz63, rossler

SYSTEMS = {"lorenz63": lorenz63, "rossler": rossler}


def check_series(x: np.ndarray, source: str) -> np.ndarray:
    """``x`` as float32 ``[T, N]`` (a 1-d series becomes ``[T, 1]``), or ``ValueError`` naming ``source``: a rank other
    than 1 or 2, no dimensions, or NaN/inf values (with the row and column of the first)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{source} must be [T, N] (or [T]) with N >= 1, got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{source} has {int(bad.sum())} NaN/inf values (first at row {row}, column {column})")
    return x


def load_series(path: str | Path) -> np.ndarray:
    """A time series ``[T, N]`` float32 from a ``.npy`` file or a comma-separated ``.csv`` file (no header).

    A 1-d series becomes ``[T, 1]``. Raises ``ValueError`` for other suffixes, other ranks, or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no time series at {path}")
    if path.suffix == ".npy":
        x = np.load(path)
    elif path.suffix == ".csv":
        x = np.loadtxt(path, delimiter=",", ndmin=2)
    else:
        raise ValueError(f"path must end in .npy or .csv, got {path.name}")
    return check_series(x, f"the series in {path}")


class SubsequenceDataset(Dataset):
    """``length`` draws of a random window ``[T, N]`` (uniform start, with replacement) from ``series [L, N]``.

    Item: ``(inputs, targets)``, both ``[T, N]``; ``inputs = targets + noise * ε``, ``ε ~ N(0, I)`` (the
    forcing signal and latent initialisation see the noisy copy, the loss the clean one).
    """

    def __init__(self, series: torch.Tensor, seq_len: int, length: int, noise: float) -> None:
        self.series, self.seq_len, self.length, self.noise = series, seq_len, length, noise

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(torch.randint(self.series.shape[0] - self.seq_len + 1, ()))
        x = self.series[start : start + self.seq_len]
        return x + self.noise * torch.randn_like(x), x


class DSRDataModule(L.LightningDataModule):
    """One long series ``[L, N]`` (from ``path`` or generated), served as batches of random subsequences.

    Training batches are ``(inputs [batch_size, seq_len, N], targets [batch_size, seq_len, N])``,
    ``batches_per_epoch`` of them an epoch (the papers: 16 subsequences, 50 batches). The validation loader yields
    one batch, the ground-truth series ``[1, L_eval, N]`` (its first ``eval_length`` points), from which the
    module generates a free-running orbit to compute D_stsp, D_H and PE.

    Args:
        path: a ``.npy``/``.csv`` file ``[L, N]`` (used as it is: the papers' files are already standardised);
            None generates ``system``.
        system: ``"lorenz63"`` or ``"rossler"`` (``lrnn.timeseries.dsr.systems``, standardised) when ``path``
            is None.
        n_steps: length of the generated series.
        seed: seed of the generated series' initial condition.
        seq_len: ``T``, steps per subsequence.
        batch_size: subsequences per batch.
        batches_per_epoch: batches per epoch.
        noise: std of the Gaussian noise on the inputs.
        eval_length: points of the series the validation measures compare against (all if None).
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        path: str | None = None,
        system: str = "lorenz63",
        n_steps: int = 100_000,
        seed: int = 0,
        seq_len: int = 200,
        batch_size: int = 16,
        batches_per_epoch: int = 50,
        noise: float = 0.05,
        eval_length: int | None = 10_000,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if path is None and system not in SYSTEMS:
            raise ValueError(f"system must be one of {sorted(SYSTEMS)} when path is None, got {system!r}")
        for name, value in (("seq_len", seq_len), ("batch_size", batch_size), ("batches_per_epoch", batches_per_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2 (one step to predict), got {seq_len}")
        if eval_length is not None and (
            isinstance(eval_length, bool) or not isinstance(eval_length, int) or eval_length < 2
        ):
            raise ValueError(f"eval_length must be None or an int >= 2, got {eval_length!r}")
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        self.save_hyperparameters()
        self.series: torch.Tensor | None = None

    def prepare_series(self) -> torch.Tensor:
        """The whole series ``[L, N]`` float32, loaded or generated once and checked against ``seq_len``."""
        if self.series is None:
            hp = self.hparams
            if hp.path is not None:
                x, source = load_series(hp.path), f"the series in {hp.path}"
            else:
                source = f"the generated {hp.system} series"
                x = check_series(SYSTEMS[hp.system](hp.n_steps, seed=hp.seed), source)
            if x.shape[0] < hp.seq_len:
                raise ValueError(
                    f"{source} has {x.shape[0]} steps, fewer than seq_len = {hp.seq_len} (the subsequence length T); "
                    "lower seq_len or give a longer series"
                )
            self.series = torch.from_numpy(np.ascontiguousarray(x))
        return self.series

    @property
    def n_dims(self) -> int:
        """``N``, the observed dimensions."""
        return self.prepare_series().shape[1]

    @property
    def eval_series(self) -> torch.Tensor:
        """The ground truth the measures compare against: the first ``eval_length`` points ``[L_eval, N]``."""
        series = self.prepare_series()
        return series if self.hparams.eval_length is None else series[: self.hparams.eval_length]

    def setup(self, stage: str) -> None:
        self.prepare_series()

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        dataset = SubsequenceDataset(self.series, hp.seq_len, hp.batch_size * hp.batches_per_epoch, hp.noise)
        return DataLoader(dataset, batch_size=hp.batch_size, num_workers=hp.num_workers, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader([self.eval_series], batch_size=1)

    def test_dataloader(self) -> DataLoader:
        """The validation series: DSR is judged on the attractor the data define, not on held-out steps."""
        return self.val_dataloader()
