import lightning as L
import torch
from lrnn.pointcloud.unilion.data import SyntheticClipDataModule, forward_camera, render_points
from lrnn.pointcloud.unilion.lit import COMBINATIONS, UniLIONModule
from pointcloud_testing import SMALL_LION

RANGE = [0.0, -16.0, -3.0, 32.0, 16.0, 1.0]


def test_rendered_image_shows_the_nearest_point_of_each_pixel():
    camera = forward_camera(width=9, height=5)
    points = torch.tensor([[10.0, 0.0, 0.0, 0.3], [20.0, 0.0, 0.0, 0.9], [5.0, 4.0, 0.0, 0.5], [-3.0, 0.0, 0.0, 1.0]])
    image = render_points(points, camera, 5, 9)
    assert image.shape == (3, 5, 9)
    centre = image[:, 2, 4]  # the 10 m point hides the 20 m one; the one behind the camera is not drawn
    torch.testing.assert_close(centre, torch.tensor([0.5, 0.75, 0.3]))
    assert (image[:, :, 0] > 0).any() and (image > 0).any(dim=0).sum() == 2  # the 5 m point: column 0


def test_one_model_learns_and_is_scored_with_every_input_combination(tmp_path):
    L.seed_everything(0)
    data = SyntheticClipDataModule(
        RANGE, n_train=12, n_val=2, n_test=2, num_objects=4, beams=16, azimuth_steps=256, image_size=(48, 144),
        batch_size=2,
    )  # fmt: skip
    model = UniLIONModule(
        SMALL_LION, ["Car", "Pedestrian", "Cyclist"], RANGE, [0.4, 0.4, 0.5],
        camera_options={"backbone": "resnet10t", "depth_bins": 30}, bev_channels=(16, 16), bev_layers=(0, 0),
        bev_upsample_channels=8, head_options={"shared_channels": 8}, seg_channels=8, lr=3e-3,
    )  # fmt: skip
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1, default_root_dir=tmp_path,
    )  # fmt: skip
    (before,) = trainer.validate(model, datamodule=data, verbose=False)
    trainer.fit(model, datamodule=data)
    (after,) = trainer.validate(model, datamodule=data, verbose=False)
    for combo in COMBINATIONS:
        assert {f"val/{combo}/loss", f"val/{combo}/seg_iou"} <= set(after)
        assert after[f"val/{combo}/loss"] < before[f"val/{combo}/loss"], (combo, before, after)
