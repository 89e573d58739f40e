"""Image classification: the CIFAR-10 data module on the shared subset and a few training steps of a timm model."""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lrnn.vision.classify import CIFAR10DataModule, ImageClassifier

SUBSET = Path("../shared/data/cifar10/cifar10_test_subset_1000.npz")
needs_subset = pytest.mark.skipif(not SUBSET.is_file(), reason=f"{SUBSET} is not here")
TINY_VIT = {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}


@needs_subset
def test_subset_split_and_batches():
    data = CIFAR10DataModule(str(SUBSET), img_size=32, batch_size=16, num_workers=0, val_fraction=0.2)
    data.setup("fit")
    assert data.num_classes == 10 and data.class_names[0] == "airplane"
    assert len(data.train_set) == 800 and len(data.eval_set) == 200
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and labels.shape == (16,)
    assert abs(float(images.mean())) < 1.0, "normalised with CIFAR-10's mean and std"
    eval_images, _ = next(iter(data.val_dataloader()))
    assert eval_images.shape == (16, 3, 32, 32)
    assert len(data.train_dataloader()) == 800 // 16, "the training loader drops its last partial batch"


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such .npz"):
        CIFAR10DataModule(str(tmp_path / "missing.npz")).setup("fit")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        CIFAR10DataModule(str(tmp_path)).setup("fit")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 1, 2, 3]))
    with pytest.raises(KeyError, match="classes"):
        CIFAR10DataModule(str(bad)).setup("fit")
    np.savez(bad, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]), classes=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="uint8"):
        CIFAR10DataModule(str(bad)).setup("fit")
    with pytest.raises(ValueError, match="val_fraction"):
        CIFAR10DataModule(val_fraction=1.0)


def test_mixup_needs_an_even_batch():
    model = ImageClassifier("vit_tiny_patch16_224", TINY_VIT, num_classes=10)
    with pytest.raises(ValueError, match="even batch"):
        model.training_step((torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])), 0)


def test_learning_rate_warms_up_then_decays_to_its_floor():
    model = ImageClassifier("vit_tiny_patch16_224", TINY_VIT, lr=1e-3, min_lr=1e-5, warmup_epochs=1)
    model.trainer = type("Stub", (), {"estimated_stepping_batches": 100, "max_epochs": 10})()
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))
    assert rates[-1] == pytest.approx(1e-5, rel=0.05)
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    assert id(model.net.patch_embed.proj.weight) in decayed and id(model.net.cls_token) not in decayed


@needs_subset
def test_a_few_training_steps_on_real_images(tmp_path):
    L.seed_everything(0)
    data = CIFAR10DataModule(str(SUBSET), img_size=32, batch_size=32, num_workers=0, auto_augment=None)
    model = ImageClassifier("vit_tiny_patch16_224", TINY_VIT, num_classes=10, warmup_epochs=0, lr=1e-3)
    trainer = L.Trainer(
        max_steps=6, limit_val_batches=2, limit_test_batches=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    before = model.net.head.weight.detach().clone()
    trainer.fit(model, datamodule=data)
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    assert trainer.global_step == 6 and not torch.equal(before, model.net.head.weight)
    assert np.isfinite(metrics["test/loss"]) and 0 <= metrics["test/acc"] <= metrics["test/acc5"] <= 1


@needs_subset
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("vim_tiny_patch16_224", {"img_size": 32, "depth": 2}),
        ("vmamba_tiny_s1l8", {"depths": (1, 1, 1, 1)}),
    ],
)
def test_our_backbones_train_through_the_recipe_module(name, kwargs, tmp_path):
    """Two optimizer steps of Vim-T and VMamba-T (depth cut, 32x32 CIFAR images) through ``ImageClassifier``."""
    L.seed_everything(0)
    data = CIFAR10DataModule(str(SUBSET), img_size=32, batch_size=8, num_workers=0, auto_augment=None)
    model = ImageClassifier(name, kwargs, num_classes=10, warmup_epochs=0)
    trainer = L.Trainer(
        max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        num_sanity_val_steps=0, default_root_dir=tmp_path,
    )  # fmt: skip
    before = [p.detach().clone() for p in model.parameters()]
    trainer.fit(model, datamodule=data)
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert trainer.global_step == 2 and changed > 0.9 * len(before)
