"""Training and evaluation of the video models: losses, schedule, the demo recipe fitted for 2 steps, the strip."""

import importlib.util
from pathlib import Path

import matplotlib.image
import pytest
import torch
from lrnn.configs import recipe_path
from lrnn.vision.video import ConvS5Video
from lrnn.vision.video.lit import VideoPredictionModule, alexnet_weights_file
from lrnn.vision.video.losses import next_frame_loss
from lrnn.vision.video.plots import plot_rollout_strip

from lrnn.cli import LrnnCLI

MNIST_IMAGES = Path("../shared/data/mnist/t10k-images-idx3-ubyte.gz")
HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None


def tiny_module(**kwargs) -> VideoPredictionModule:
    torch.manual_seed(0)
    model = ConvS5Video(image_size=16, depths=(4, 8), d_model=8, n_layers=2, ssm_size=8, num_groups=2)
    return VideoPredictionModule(model, **kwargs)


def test_losses_sum_over_each_row_of_pixels_and_average_the_rest():
    prediction = torch.zeros(2, 3, 1, 4, 5)
    target = torch.zeros(2, 3, 1, 4, 5)
    target[0, 0, 0, 0] = 2.0  # one row of 5 pixels off by 2, among 2 * 3 * 4 rows
    loss, mse, l1 = next_frame_loss(prediction, target, loss_weight=0.25)
    torch.testing.assert_close(mse, torch.tensor(5 * 4.0 / 24))
    torch.testing.assert_close(l1, torch.tensor(5 * 2.0 / 24))
    torch.testing.assert_close(loss, 0.25 * mse + 0.75 * l1)


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_zero():
    module = tiny_module(lr=1.0, warmup_steps=10, decay_steps=30)
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    factor = scheduler.lr_lambdas[0]
    assert [factor(s) for s in (0, 5, 10, 30, 40)] == pytest.approx([0, 0.5, 1, 0, 0], abs=1e-12)
    assert factor(20) == pytest.approx(0.5)


def test_evaluation_needs_sequences_longer_than_the_context_and_models_must_fit():
    module = tiny_module(context_frames=6)
    with pytest.raises(ValueError, match="6 frames, not more than context_frames = 6"):
        module.validation_step(torch.zeros(1, 6, 1, 16, 16), 0)
    with pytest.raises(TypeError, match="VideoPredictor"):
        VideoPredictionModule(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="decay_steps"):
        tiny_module(warmup_steps=10, decay_steps=10)


def test_strip_has_a_context_a_prediction_and_a_truth_row(tmp_path):
    context, prediction = torch.zeros(12, 1, 16, 16), torch.ones(20, 1, 16, 16)
    path = plot_rollout_strip(context, prediction, -prediction, tmp_path / "strip.png", n_frames=5)
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > image.shape[0]
    with pytest.raises(ValueError, match="one frame shape"):
        plot_rollout_strip(context, prediction, prediction[:, :, :8], tmp_path / "bad.png")


@pytest.mark.skipif(
    not (HAS_SKLEARN or MNIST_IMAGES.is_file()), reason="needs scikit-learn's digits or the shared MNIST file"
)
def test_demo_recipe_fits_two_steps_and_writes_the_rollout_strip(tmp_path):
    overrides = [
        "--trainer.max_steps=2",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    if not HAS_SKLEARN:
        overrides.append(f"--data.init_args.path={MNIST_IMAGES}")
    cli = LrnnCLI(args=["--config", str(recipe_path("demo/vision.yaml")), *overrides], run=False)
    before = [p.detach().clone() for p in cli.model.parameters()]
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, cli.model.parameters(), strict=True))
    assert {"test/loss", "test/psnr", "test/ssim"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(value)) for value in metrics.values())
    assert ("test/lpips" in metrics) == alexnet_weights_file().is_file()
    strip = Path(cli.trainer.logger.log_dir) / "rollout_test.png"
    assert strip.is_file() and matplotlib.image.imread(strip).ndim == 3


@pytest.mark.gpu
def test_validation_rolls_out_from_a_cuda_graph_with_the_eager_scores():
    """Lightning's validation on CUDA (inference mode) with the graphed rollout gives the eager rollout's scores."""
    import lightning as L

    video = torch.rand(4, 12, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    scores = []
    for graphed in (True, False):
        module = tiny_module(context_frames=4, rollout_cuda_graph=graphed)
        trainer = L.Trainer(
            accelerator="gpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
        )
        scores.append(trainer.validate(module, torch.utils.data.DataLoader(video, batch_size=2), verbose=False)[0])
    assert scores[0].keys() == scores[1].keys() and "val/psnr" in scores[0]
    for name in scores[0]:
        assert scores[0][name] == pytest.approx(scores[1][name], rel=1e-5), name
