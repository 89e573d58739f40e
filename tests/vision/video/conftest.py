"""The video tests run torch on one thread: their tensors are small, and on a busy 2-core machine two threads
wait on each other (the demo recipe: 2.6 s of training and testing on one thread, 45 s on two)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
