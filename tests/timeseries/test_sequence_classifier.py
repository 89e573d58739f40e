"""The S5 sequence classifier: shapes, errors, and a few real training steps through Lightning."""

import lightning as L
import pytest
import torch
from lrnn.timeseries.classify import MixerClassifier
from lrnn.timeseries.data import WaveformDataModule
from lrnn.timeseries.lit import SequenceClassifier


def test_logits_shape_and_pooling():
    for pooling in ("mean", "last"):
        net = MixerClassifier(2, 5, 16, 2, "s5", {"state_size": 8}, 0.0, pooling)
        assert net(torch.randn(3, 20, 2)).shape == (3, 5)


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="pooling"):
        MixerClassifier(1, 5, 16, 2, "s5", {}, 0.0, "max")
    with pytest.raises(ValueError, match="unknown mixer"):
        MixerClassifier(1, 5, 16, 2, "s6", {}, 0.0, "mean")
    net = MixerClassifier(1, 5, 16, 1, "s5", {}, 0.0, "mean")
    with pytest.raises(ValueError, match=r"\[B, L, 1\]"):
        net(torch.randn(3, 20, 2))


def test_trains_a_few_steps(tmp_path):
    torch.manual_seed(0)
    data = WaveformDataModule(num_classes=3, length=64, noise=0.3, n_train=64, n_val=32, n_test=32, batch_size=16)
    model = SequenceClassifier(
        num_classes=3, d_model=16, n_layers=2, mixer_cfg={"state_size": 8}, dropout=0.0, lr=1e-2, warmup_steps=2
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = L.Trainer(
        max_steps=16,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 16
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.endswith("mixer.log_dt") for k in changed) and any(k.endswith("mixer.B") for k in changed)
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    assert torch.isfinite(torch.tensor(metrics["test/loss"])) and 0 <= metrics["test/acc"] <= 1
    assert model.test_confusion.compute().sum() == 32
    predictions = torch.cat(trainer.predict(model, datamodule=data))
    assert predictions.shape == (32,) and predictions.dtype == torch.int64
