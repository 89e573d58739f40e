"""Length bucketing: batches of items of similar length, bounded by a token budget and a batch size.

``LengthBucketBatchSampler`` is a ``DataLoader`` ``batch_sampler``. The batch boundaries are fixed once: the items
sorted by length are cut greedily into batches of at most ``max_batch_size`` items and at most ``max_tokens``
padded tokens (items × the batch's longest length). Every epoch (``set_epoch``) draws, from a generator seeded with
``seed + epoch`` (PyTorch's ``DistributedSampler`` convention):

* the order of items of equal length (so the batch boundaries, and the number of batches, never change), then
* the order of the batches (when ``shuffle``; otherwise shortest first).

Nothing is dropped. An item longer than ``max_tokens`` makes a batch of one, with a warning. Over ``num_replicas``
ranks, the epoch's batch list is extended by repeating its first batches until its length divides by
``num_replicas`` (``padding_batches`` of them), and rank ``r`` takes batches ``r, r + num_replicas, ...``: every
rank steps as many times, as distributed training needs.

Lightning calls ``set_epoch`` on a batch sampler's ``sampler`` attribute, so ``sampler`` is the batch sampler
itself. Lightning cannot put its own distributed sampler into this one: train with
``Trainer(use_distributed_sampler=False)`` and give the trainer's rank and world size here.
"""

import math
import warnings
from collections.abc import Iterator, Sequence
from itertools import accumulate

import torch
from torch.utils.data import Sampler


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of indices into ``lengths``, grouped by length (see the module docstring).

    Args:
        lengths: the length of every item, in tokens (any positive ints).
        max_tokens: most padded tokens in a batch (batch size × its longest item), or None for no budget.
        max_batch_size: most items in a batch, or None for no bound (at least one bound is needed).
        shuffle: draw a new batch order every epoch; otherwise the batches come shortest first.
        seed: seeds the orders (with the epoch).
        num_replicas, rank: the data-parallel world size and this process's rank in it.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int | None = None,
        max_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if len(lengths) == 0:
            raise ValueError("lengths is empty: there is nothing to batch")
        if max_tokens is None and max_batch_size is None:
            raise ValueError("give max_tokens, max_batch_size or both: a batch needs a bound")
        for name, bound in (("max_tokens", max_tokens), ("max_batch_size", max_batch_size)):
            if bound is not None and bound < 1:
                raise ValueError(f"{name} must be a positive int or None, got {bound!r}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank {rank} of {num_replicas}")
        self.lengths = torch.as_tensor(lengths, dtype=torch.long)
        if int(self.lengths.min()) < 1:
            raise ValueError(f"lengths must be positive, got a minimum of {int(self.lengths.min())}")
        self.max_tokens, self.max_batch_size = max_tokens, max_batch_size
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.num_replicas, self.rank = num_replicas, rank
        self.batch_sizes = self._cut(self.lengths.sort().values.tolist())
        self.padding_batches = -len(self.batch_sizes) % num_replicas
        oversized = int((self.lengths > max_tokens).sum()) if max_tokens is not None else 0
        if oversized:
            warnings.warn(
                f"{oversized} items are longer than max_tokens={max_tokens} (the longest: {int(self.lengths.max())}"
                " tokens); each makes a batch of one. Raise max_tokens, or remove them, if that does not fit memory.",
                stacklevel=2,
            )

    def _cut(self, sorted_lengths: list[int]) -> list[int]:
        """Sizes of the greedy batches over ``sorted_lengths`` (ascending), in order."""
        sizes = [0]
        for length in sorted_lengths:
            grown = sizes[-1] + 1
            too_many = self.max_batch_size is not None and grown > self.max_batch_size
            too_long = self.max_tokens is not None and grown * length > self.max_tokens
            if sizes[-1] > 0 and (too_many or too_long):
                sizes.append(1)
            else:
                sizes[-1] = grown
        return sizes

    @property
    def sampler(self) -> "LengthBucketBatchSampler":
        """This batch sampler: where Lightning looks for ``set_epoch``."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Draw the next ``__iter__``'s orders for ``epoch``."""
        self.epoch = epoch

    def epoch_batches(self) -> list[list[int]]:
        """Every rank's batches of this epoch (``padding_batches`` repeats included), in order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        ties = torch.randperm(len(self.lengths), generator=generator)
        order = ties[self.lengths[ties].argsort(stable=True)].tolist()
        bounds = [0, *accumulate(self.batch_sizes)]
        batches = [order[start:stop] for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]
        if self.shuffle:
            batches = [batches[index] for index in torch.randperm(len(batches), generator=generator).tolist()]
        return [batches[index % len(batches)] for index in range(len(batches) + self.padding_batches)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_batches()[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return math.ceil(len(self.batch_sizes) / self.num_replicas)
