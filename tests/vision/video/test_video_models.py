"""ConvS5 and ConvLSTM video models: shapes, parallel = step = rollout, state carry-over, dropout, errors."""

import pytest
import torch
from lrnn.vision.video import ConvLSTMVideo, ConvS5Video
from lrnn.vision.video.autoencoder import FrameDecoder, FrameEncoder
from lrnn.vision.video.residual import PostNormResidual

TINY = dict(image_size=16, channels=1, depths=(4, 8), d_model=8, n_layers=2, num_groups=2)


def tiny(kind: str):
    torch.manual_seed(0)
    model = ConvS5Video(**TINY, ssm_size=8) if kind == "convs5" else ConvLSTMVideo(**TINY)
    return model.eval()


def frames(batch: int = 2, steps: int = 6) -> torch.Tensor:
    return torch.rand(batch, steps, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_encoder_takes_64x64_frames_to_16x16_maps_and_the_decoder_back():
    encoder, decoder = FrameEncoder(1, (64, 128, 256), 32), FrameDecoder(256, (64, 128, 256), 1, 32)
    latents = encoder(torch.randn(1, 1, 64, 64))
    assert latents.shape == (1, 256, 16, 16)
    assert decoder(latents).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("kind", ["convs5", "convlstm"])
def test_shapes_output_range_and_states(kind):
    model = tiny(kind)
    with torch.no_grad():
        prediction, states = model(frames())
    assert prediction.shape == (2, 6, 1, 16, 16) and prediction.abs().max() < 1
    assert len(states) == 2
    if kind == "convs5":
        assert all(s.shape == (2, 4, 8, 8) and s.dtype == torch.complex64 for s in states)
    else:
        assert all(len(s) == 2 and s[0].shape == (2, 8, 8, 8) for s in states)


@pytest.mark.parametrize("kind", ["convs5", "convlstm"])
def test_step_mode_matches_the_parallel_form(kind):
    model, video = tiny(kind), frames()
    with torch.no_grad():
        parallel, final = model(video)
        states, steps = None, []
        for t in range(video.shape[1]):
            prediction, states = model.step(video[:, t], states)
            steps.append(prediction)
    torch.testing.assert_close(torch.stack(steps, dim=1), parallel, atol=2e-5, rtol=1e-5)
    for got, want in zip(states, final, strict=True):
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["convs5", "convlstm"])
def test_states_carry_a_sequence_over_from_one_call_to_the_next(kind):
    model, video = tiny(kind), frames()
    with torch.no_grad():
        whole, _ = model(video)
        first, states = model(video[:, :4])
        rest, _ = model(video[:, 4:], states)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole, atol=2e-5, rtol=1e-5)


def test_rollout_feeds_back_its_predictions_as_the_parallel_form_would():
    model, context = tiny("convs5"), frames(steps=3)
    with torch.no_grad():
        generated = model.rollout(context, 5)
        replay, _ = model(torch.cat([context, generated[:, :-1]], dim=1))
    assert generated.shape == (2, 5, 1, 16, 16)
    torch.testing.assert_close(replay[:, 2:], generated, atol=2e-5, rtol=1e-5)


def test_layer_dropout_mask_is_shared_by_all_frames():
    torch.manual_seed(0)
    residual = PostNormResidual(d_model=16, dropout=0.5).train()
    u = torch.randn(2, 1, 16, 3, 3).expand(2, 5, 16, 3, 3)
    out = residual(u, torch.ones(2, 5, 16, 3, 3))
    assert not torch.allclose(out, residual.eval()(u, torch.ones(2, 5, 16, 3, 3)))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))


@pytest.mark.parametrize("kind", ["convs5", "convlstm"])
def test_wrong_frames_and_states_raise_clear_errors(kind):
    model = tiny(kind)
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(1, 16, 16\), got shape \(2, 3, 1, 32, 32\)"):
        model(torch.zeros(2, 3, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(C, H, W\) = \(1, 16, 16\), got shape \(2, 3, 3, 16, 16\)"):
        model(torch.zeros(2, 3, 3, 16, 16))
    with pytest.raises(ValueError, match=r"frame must be \[B, C, H, W\]"):
        model.step(torch.zeros(2, 3, 1, 16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 3, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"one state per layer \(2\), got 1"):
        model(torch.zeros(2, 3, 1, 16, 16), [None])
    with pytest.raises(ValueError, match="n_frames must be a positive int"):
        model.rollout(torch.zeros(2, 3, 1, 16, 16), 0)


def test_bad_sizes_are_refused_at_construction():
    with pytest.raises(ValueError, match=r"image_size must be a multiple of 2\^\(len\(depths\) - 1\) = 4"):
        ConvS5Video(**{**TINY, "image_size": 18, "depths": (4, 8, 8)}, ssm_size=8)
    with pytest.raises(ValueError, match="d_model must be positive ints divisible by num_groups=4, got 6"):
        ConvLSTMVideo(**{**TINY, "d_model": 6, "num_groups": 4})
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        ConvLSTMVideo(**{**TINY, "n_layers": 0})


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["convs5", "convlstm"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_cuda_graph_rollout_generates_the_eager_frames(kind, dtype):
    """The captured step replayed frame after frame gives the eager rollout's frames, also under autocast, and
    leaves the conditioning states untouched; 40 frames, so the replays feed back for many steps."""
    model, context = tiny(kind).cuda(), frames(steps=3).cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
        eager = model.rollout(context, 40)
        graphed = model.rollout(context, 40, cuda_graph=True)
    assert graphed.shape == eager.shape == (2, 40, 1, 16, 16) and graphed.dtype == eager.dtype
    tolerance = 1e-5 if dtype is None else 1e-2  # the same kernels in both; bf16's rounding if not
    torch.testing.assert_close(graphed, eager, atol=tolerance, rtol=tolerance)


def test_cuda_graph_rollout_refuses_cpu_tensors_and_gradients():
    model, context = tiny("convs5"), frames(steps=3)
    with torch.no_grad(), pytest.raises(ValueError, match="needs CUDA tensors, got them on cpu"):
        model.rollout(context, 4, cuda_graph=True)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="records no gradients"):
            model.cuda().rollout(context.cuda(), 4, cuda_graph=True)
