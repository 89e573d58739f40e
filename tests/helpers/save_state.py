"""Test-only Lightning callback; the DDP test puts this folder on ``PYTHONPATH`` of the ``lrnn`` subprocess."""

from pathlib import Path

import torch
from lightning.pytorch import Callback


class SaveStateDict(Callback):
    """At the end of ``fit``, every rank saves its module's ``state_dict`` to ``<out_dir>/rank<k>.pt``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {key: value.detach().cpu() for key, value in pl_module.state_dict().items()}
        torch.save({"step": trainer.global_step, "state": state}, self.out_dir / f"rank{trainer.global_rank}.pt")
