"""``TorchThreads``: a recipe sets the CPU thread count for its run, and the previous count comes back after."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lrnn.timeseries.forecast import TPGN, ForecastDataModule, Forecaster

from lrnn.callbacks import TorchThreads


def test_torch_threads_callback_sets_and_restores_the_thread_count():
    seen = []

    class Spy(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    data = ForecastDataModule(input_len=48, horizon=24, synthetic_steps=600)
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[TorchThreads(1), Spy()],
    )
    trainer.fit(Forecaster(TPGN(48, 24, period=24)), datamodule=data)
    after = torch.get_num_threads()
    torch.set_num_threads(before)
    assert seen == [1, 1] and after == 2
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        TorchThreads(0)
