"""The synthetic waveform task: deterministic, balanced, labelled as documented."""

import pytest
import torch
from lrnn.timeseries.classify import make_waveforms, waveform_class_names
from lrnn.timeseries.data import WaveformDataModule


def test_shapes_dtypes_and_balance():
    x, y = make_waveforms(60, 128, 6, noise=0.5)
    assert x.shape == (60, 128, 1) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.bincount(y, minlength=6).tolist() == [10] * 6


def test_same_seed_same_data_other_seed_other_data():
    x1, y1 = make_waveforms(20, 64, 4, noise=1.0, seed=3)
    x2, y2 = make_waveforms(20, 64, 4, noise=1.0, seed=3)
    x3, _ = make_waveforms(20, 64, 4, noise=1.0, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)


def test_noise_free_classes_differ_in_period_and_shape():
    x, y = make_waveforms(600, 384, 6, noise=0.0, base_period=48.0)
    spectrum = torch.fft.rfft(x[..., 0] - x[..., 0].mean(1, keepdim=True)).abs()
    peak = spectrum.argmax(dim=1).float()
    for c in range(6):
        expected = 384 / (48.0 / 2 ** (c // 3))
        assert (peak[y == c] - expected).abs().median() <= 0.2 * expected
    power = spectrum.square()
    third = power[:, 20:28].sum(1) / power.sum(1)  # 3rd harmonic of the 48-step band
    assert third[y == 1].mean() > 5 * third[y == 0].mean() and third[y == 2].mean() > 5 * third[y == 0].mean()


def test_class_names():
    assert waveform_class_names(4) == ["sine/48", "square/48", "sawtooth/48", "sine/24"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "positive"),
        ({"num_classes": 1}, "num_classes"),
        ({"num_classes": 13}, "num_classes"),
        ({"noise": -1.0}, "noise"),
        ({"num_classes": 12, "base_period": 8.0}, "base_period"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"n": 10, "length": 32, "num_classes": 4, "noise": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_waveforms(**args)


def test_datamodule_splits_and_batches():
    dm = WaveformDataModule(num_classes=4, length=32, n_train=40, n_val=12, n_test=20, batch_size=8)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 32, 1) and y.shape == (8,)
    assert len(dm.val_dataloader().dataset) == 12 and len(dm.test_dataloader().dataset) == 20
    assert not torch.equal(dm.splits["train"].tensors[0][:12], dm.splits["val"].tensors[0])
    assert dm.class_names == waveform_class_names(4)
