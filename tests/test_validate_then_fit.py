"""``trainer.validate`` and then ``trainer.fit`` in one process, on a plain ``Trainer`` (inference mode on): the
metric states that ``validate`` made in inference mode must not reach the validation inside ``fit``, which runs
outside it and updates them in place. One module of each domain that holds torchmetrics metrics, at the smallest
size its own tests use."""

from pathlib import Path

import lightning as L
import pytest
from lrnn.audio.data import SpeechDataModule
from lrnn.audio.lit import LinaSpeechModule
from lrnn.timeseries.data import WaveformDataModule
from lrnn.timeseries.dsr.data import DSRDataModule
from lrnn.timeseries.dsr.lit import DSRModule
from lrnn.timeseries.dsr.models import ALRNN
from lrnn.timeseries.forecast import TPGN, ForecastDataModule, Forecaster
from lrnn.timeseries.lit import SequenceClassifier
from lrnn.vision.classify import CIFAR10DataModule, ImageClassifier
from lrnn.vision.video import ConvS5Video
from lrnn.vision.video.data import MovingMNISTDataModule
from lrnn.vision.video.lit import VideoPredictionModule

CIFAR10_SUBSET = Path("../shared/data/cifar10/cifar10_test_subset_1000.npz")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """The modules are tiny: one torch thread (tests/conftest.py)."""


def forecaster(tmp_path: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    data = ForecastDataModule(path=None, input_len=48, horizon=12, synthetic_steps=600, batch_size=4)
    return Forecaster(TPGN(48, 12, n_channels=1, period=24, d_model=4)), data


def sequence_classifier(tmp_path: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    data = WaveformDataModule(num_classes=3, length=64, n_train=8, n_val=8, n_test=8, batch_size=4)
    return SequenceClassifier(num_classes=3, d_model=16, n_layers=1, mixer_cfg={"state_size": 8}), data


def image_classifier(tmp_path: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    if not CIFAR10_SUBSET.is_file():
        pytest.skip(f"{CIFAR10_SUBSET} is not here")
    data = CIFAR10DataModule(str(CIFAR10_SUBSET), img_size=32, batch_size=4, num_workers=0, auto_augment=None)
    tiny_vit = {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}
    return ImageClassifier("vit_tiny_patch16_224", tiny_vit, num_classes=10, warmup_epochs=0), data


def video_predictor(tmp_path: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    pytest.importorskip("sklearn", reason="Moving-MNIST is drawn from scikit-learn's digits")
    model = ConvS5Video(image_size=16, depths=(4, 8), d_model=8, n_layers=2, ssm_size=8, num_groups=2)
    data = MovingMNISTDataModule(
        image_size=16, digit_size=8, seq_len=4, eval_seq_len=6, n_train=2, n_val=1, n_test=1, batch_size=1
    )
    return VideoPredictionModule(model, warmup_steps=0, context_frames=3), data


def speech_model(tmp_path: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    codec_path = str(tmp_path / "codec.safetensors")
    data = SpeechDataModule(
        wav_dir=str(tmp_path / "wavs"),
        transcript_path=str(tmp_path / "transcript.psv"),
        codec_path=codec_path,
        codes_cache_path=str(tmp_path / "codes.safetensors"),
        batch_size=2,
        val_fraction=0.5,
        codec_settings={"n_codebooks": 1, "codebook_size": 8, "n_mels": 20},
        tone_corpus_clips=4,
    )
    dims = {"d_model": 16, "num_layers": 1, "num_heads": 2, "text_layers": 1, "text_heads": 2, "position_dim": 8}
    return LinaSpeechModule(codec_path, codebook_size=8, warmup_steps=0, **dims), data


def dynamical_system_model(tmp_path: Path) -> tuple[L.LightningModule, L.LightningDataModule]:
    data = DSRDataModule(system="rossler", n_steps=500, seq_len=30, batch_size=4, batches_per_epoch=1, eval_length=200)
    return DSRModule(ALRNN(10, 2, 3)), data


class FitValidations(L.Callback):
    """Counts the validation epochs that run inside ``fit``."""

    def __init__(self) -> None:
        self.count = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.count += trainer.state.fn == "fit"


@pytest.mark.filterwarnings("error:The ``compute`` method of metric")  # no metric reset between update and compute
@pytest.mark.parametrize(
    "build",
    [forecaster, sequence_classifier, image_classifier, video_predictor, speech_model, dynamical_system_model],
)
def test_fit_validates_after_a_validate_run(build, tmp_path):
    L.seed_everything(0)
    module, data = build(tmp_path)
    fit_validations = FitValidations()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=1,
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        callbacks=[fit_validations],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(module, datamodule=data, verbose=False)  # metric states made in inference mode
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 1 and fit_validations.count == 1
