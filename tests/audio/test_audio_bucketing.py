"""``LengthBucketBatchSampler``: budgets hold, nothing is lost, epochs reshuffle, ranks split evenly; and
``SpeechDataModule`` with ``length_bucketing`` under Lightning."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lrnn.audio.bucketing import LengthBucketBatchSampler
from lrnn.audio.codec.mel_kmeans import MelKMeansCodec
from lrnn.audio.data import SpeechDataModule, audio_steps

LENGTHS = torch.randint(10, 200, (101,), generator=torch.Generator().manual_seed(0)).tolist()


def flat(batches: list[list[int]]) -> list[int]:
    return sorted(index for batch in batches for index in batch)


def test_batches_keep_every_item_once_within_both_bounds():
    sampler = LengthBucketBatchSampler(LENGTHS, max_tokens=600, max_batch_size=8)
    batches = list(sampler)
    assert len(batches) == len(sampler) and flat(batches) == list(range(len(LENGTHS)))
    assert all(len(batch) <= 8 and len(batch) * max(LENGTHS[i] for i in batch) <= 600 for batch in batches)


def test_batches_group_neighbours_in_length():
    """Each batch is a run of the sorted lengths: no other item's length falls strictly inside a batch's range."""
    sampler = LengthBucketBatchSampler(LENGTHS, max_tokens=600)
    for batch in sampler:
        low, high = min(LENGTHS[i] for i in batch), max(LENGTHS[i] for i in batch)
        outside = [length for index, length in enumerate(LENGTHS) if index not in batch]
        assert not any(low < length < high for length in outside)


def test_epochs_reshuffle_reproducibly_and_keep_the_batch_count():
    sampler = LengthBucketBatchSampler(LENGTHS, max_tokens=600, seed=3)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and len(second) == len(first) and flat(second) == flat(first)
    assert sampler.sampler is sampler  # where Lightning calls set_epoch


def test_without_shuffle_batches_come_shortest_first():
    batches = list(LengthBucketBatchSampler(LENGTHS, max_batch_size=10, shuffle=False))
    longest = [max(LENGTHS[i] for i in batch) for batch in batches]
    assert longest == sorted(longest) and [len(batch) for batch in batches] == [10] * 10 + [1]


def test_an_item_over_the_budget_is_kept_alone_with_a_warning():
    with pytest.warns(UserWarning, match="1 items are longer than max_tokens=100"):
        sampler = LengthBucketBatchSampler([30, 30, 150, 40], max_tokens=100)
    batches = list(sampler)
    assert [2] in batches and flat(batches) == [0, 1, 2, 3]


@pytest.mark.parametrize("replicas", [2, 3, 8])
def test_ranks_get_as_many_batches_and_together_all_items(replicas):
    samplers = [
        LengthBucketBatchSampler(LENGTHS, max_tokens=600, num_replicas=replicas, rank=rank) for rank in range(replicas)
    ]
    per_rank = [list(sampler) for sampler in samplers]
    assert all(len(batches) == len(samplers[0]) for batches in per_rank)
    assert set(flat([batch for batches in per_rank for batch in batches])) == set(range(len(LENGTHS)))
    total = sum(len(batches) for batches in per_rank)
    assert total == len(samplers[0].batch_sizes) + samplers[0].padding_batches and total % replicas == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lengths=[]), "empty"),
        (dict(lengths=[3]), "a batch needs a bound"),
        (dict(lengths=[3], max_tokens=0), "max_tokens must be a positive"),
        (dict(lengths=[0, 3], max_batch_size=2), "lengths must be positive"),
        (dict(lengths=[3], max_batch_size=2, num_replicas=2, rank=2), "rank 2 of 2"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LengthBucketBatchSampler(**kwargs)


@pytest.fixture(scope="module")
def bucketed_data(ljspeech, training_wavs, tmp_path_factory):
    """``bucketed_data(**kwargs)``: a prepared, set-up data module over the 32 clips with bucketing on."""
    folder = tmp_path_factory.mktemp("bucketed")
    MelKMeansCodec(codebook_size=16, n_mels=32).fit(training_wavs[:2], n_iters=3).save(folder / "codec.safetensors")

    def make(**kwargs):
        data = SpeechDataModule(
            wav_dir=str(ljspeech / "wavs"),
            transcript_path=str(ljspeech / "transcripts_32.psv"),
            codec_path=str(folder / "codec.safetensors"),
            codes_cache_path=str(folder / "codes.safetensors"),
            length_bucketing=True,
            **kwargs,
        )
        data.prepare_data()
        data.setup("fit")
        return data

    return make


def test_data_module_batches_stay_within_the_token_budget(bucketed_data):
    data = bucketed_data(batch_size=8, max_tokens=3000, val_fraction=0.25)
    batches = list(data.train_dataloader())
    assert sorted(clip_id for batch in batches for clip_id in batch["ids"]) == sorted(i["id"] for i in data.train_items)
    assert all(batch["audio_tokens"].shape[0] * batch["audio_tokens"].shape[1] <= 3000 for batch in batches)
    assert all(len(batch["ids"]) <= 8 for batch in batches)
    val_steps = [int(length) for batch in data.val_dataloader() for length in batch["audio_lengths"]]
    assert val_steps == sorted(audio_steps(item) for item in data.val_items)


def test_data_module_splits_training_batches_by_the_trainers_rank(bucketed_data):
    data = bucketed_data(batch_size=4, val_fraction=0.25)
    ranks = []
    for rank in range(2):
        data.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        ranks.append([clip_id for batch in data.train_dataloader() for clip_id in batch["ids"]])
    assert len(data.train_dataloader()) == 3  # 24 clips in 6 batches of 4, 3 a rank
    assert not set(ranks[0]) & set(ranks[1]) and set(ranks[0]) | set(ranks[1]) == {i["id"] for i in data.train_items}


class RecordingModule(L.LightningModule):
    """Records the clip ids of every training batch; learns nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[str]] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen.append(batch["ids"])
        return self.weight.sum() * 0

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_reshuffles_the_batches_every_epoch(bucketed_data):
    data = bucketed_data(batch_size=4, max_tokens=4000, val_fraction=0.0)
    module = RecordingModule()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=data)
    per_epoch = len(module.seen) // 2
    first, second = module.seen[:per_epoch], module.seen[per_epoch:]
    assert first != second and sorted(map(sorted, first)) == sorted(map(sorted, second))
    assert sorted(clip_id for batch in first for clip_id in batch) == sorted(i["id"] for i in data.train_items)


def test_max_tokens_without_bucketing_is_refused():
    with pytest.raises(ValueError, match="set length_bucketing=True"):
        SpeechDataModule("w", "t", "c", "k", max_tokens=100)
