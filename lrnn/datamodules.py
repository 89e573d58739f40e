"""LightningDataModule pieces that the domains share."""

import lightning as L
from torch.utils.data import DataLoader, Dataset


class SplitsDataModule(L.LightningDataModule):
    """Serves ``self.splits`` (``"train"``, ``"val"``, ``"test"`` datasets, filled by a subclass's ``setup``) with
    ``hparams.batch_size`` and ``hparams.num_workers``: the training split shuffled with its last partial batch
    dropped, the others in order and whole; ``predict`` reads the test split. A subclass may set ``collate_fn``."""

    splits: dict[str, Dataset]
    collate_fn = None

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            drop_last=shuffle,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
