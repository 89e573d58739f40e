"""Lightning callbacks that recipes of every domain use."""

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class TorchThreads(Callback):
    """``torch.set_num_threads(num_threads)`` from ``setup`` to ``teardown`` (the previous count is restored).

    Models of a few thousand parameters (TPGN has 431 on ETTh1) run fastest on one thread: the work per operation
    is too small to share, and on a busy machine the extra threads wait on each other (measured here: the demo
    recipe trained in 3.5 s on one thread, in 110 s on two while other jobs ran).
    """

    def __init__(self, num_threads: int = 1) -> None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        self.num_threads = num_threads
        self.previous: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.previous is not None:
            torch.set_num_threads(self.previous)
