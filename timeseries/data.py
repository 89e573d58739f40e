"""LightningDataModules of the time-series domain."""

from torch.utils.data import TensorDataset

from ..datamodules import SplitsDataModule
from .classify.waveforms import make_waveforms, waveform_class_names


class WaveformDataModule(SplitsDataModule):
    """The synthetic waveform classification task (``lrnn.timeseries.classify.waveforms``), generated in memory.

    Batches are ``(x [B, length, 1] float32, y [B] int64)``. The three splits come from seeds ``seed``,
    ``seed + 1`` and ``seed + 2``, so every process of a distributed run builds the same data.

    Args:
        num_classes: classes, 2 to 12 (3 shapes times up to 4 frequency bands).
        length: steps per sequence.
        noise: std of the additive Gaussian noise (the signal has unit RMS).
        base_period: period in steps of the slowest band; each next band halves it.
        n_train, n_val, n_test: sequences per split (the test split also serves ``predict``).
        seed: seed of the training split.
        batch_size: sequences per batch (per process).
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        num_classes: int = 6,
        length: int = 256,
        noise: float = 1.0,
        base_period: float = 48.0,
        n_train: int = 4096,
        n_val: int = 512,
        n_test: int = 1024,
        seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.class_names = waveform_class_names(num_classes, base_period)

    def setup(self, stage: str) -> None:
        hp = self.hparams
        sizes = {"train": hp.n_train, "val": hp.n_val, "test": hp.n_test}
        self.splits = {
            split: TensorDataset(*make_waveforms(n, hp.length, hp.num_classes, hp.noise, hp.base_period, hp.seed + i))
            for i, (split, n) in enumerate(sizes.items())
        }
