"""``VideoPredictor``: the no-VQ next-frame model of the official ConvS5 code with any stack of sequence layers.

Each frame is encoded to a latent map (``FrameEncoder``), projected to ``d_model`` channels by a 1x1 conv,
run through the sequence layers over time, and decoded back to a frame with ``tanh`` (``FrameDecoder``). The
output at time ``t`` is the prediction of frame ``t + 1``. The official model also concatenates an action
embedding before that 1x1 conv; with actions off (Moving-MNIST) the embedding is a constant, i.e. only a bias,
which this conv already has.
"""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import nn

from .autoencoder import FrameDecoder, FrameEncoder
from .cuda_graph_rollout import check_capturable, generate_with_cuda_graph
from .initializers import reset_like_flax


class VideoPredictor(nn.Module):
    """Encoder, ``layers`` on the latent maps, decoder; subclasses build the layers (``ConvS5Video``,
    ``ConvLSTMVideo``).

    Every layer maps ``(u [B, T, d_model, h, w], state) -> (u, state)`` and has ``step(u_t [B, d_model, h, w],
    state)``; a state of None means zeros. Frames are ``[B, T, channels, image_size, image_size]`` in [-1, 1].

    Args:
        image_size: frame height and width ``S``; the latent maps are ``S / 2^(len(depths) - 1)`` wide.
        channels: frame channels (1 for Moving-MNIST).
        depths: encoder widths per scale (the decoder mirrors them); official (64, 128, 256).
        d_model: latent channels of the sequence layers.
        num_groups: groups of every GroupNorm (Flax's default 32 in the official code).
        n_layers: sequence layers.
        make_layer: builds one sequence layer (called ``n_layers`` times, after the arguments are checked).
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        depths: Sequence[int],
        d_model: int,
        num_groups: int,
        n_layers: int,
        make_layer: Callable[[], nn.Module],
    ) -> None:
        super().__init__()
        depths = tuple(depths)
        if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f"depths must be positive ints, got {depths}")
        scale = 2 ** (len(depths) - 1)
        if not isinstance(image_size, int) or image_size < scale or image_size % scale:
            raise ValueError(f"image_size must be a multiple of 2^(len(depths) - 1) = {scale}, got {image_size!r}")
        if not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if not isinstance(num_groups, int) or num_groups < 1:
            raise ValueError(f"num_groups must be a positive int, got {num_groups!r}")
        for name, width in [*(("depths", d) for d in depths), ("d_model", d_model)]:
            if not isinstance(width, int) or width < 1 or width % num_groups:
                raise ValueError(f"{name} must be positive ints divisible by num_groups={num_groups}, got {width!r}")
        self.image_size, self.channels, self.d_model = image_size, channels, d_model
        self.latent_size = image_size // scale
        self.encoder = FrameEncoder(channels, depths, num_groups)
        self.project = nn.Conv2d(depths[-1], d_model, 1)
        self.layers = nn.ModuleList(make_layer() for _ in range(n_layers))
        self.decoder = FrameDecoder(d_model, depths, channels, num_groups)
        reset_like_flax(self)

    def forward(self, frames: torch.Tensor, states: list[Any] | None = None) -> tuple[torch.Tensor, list[Any]]:
        """Teacher-forced predictions ``[B, T, C, S, S]`` (``[:, t]`` predicts frame ``t + 1``) and the layers'
        states after the last frame, from ``states`` (one per layer) or zeros."""
        self._check_frames("frames", frames, 5)
        batch, steps = frames.shape[:2]
        u = self.project(self.encoder(frames.flatten(0, 1))).unflatten(0, (batch, steps))
        states = self._check_states(states)
        for i, layer in enumerate(self.layers):
            u, states[i] = layer(u, states[i])
        return torch.tanh(self.decoder(u.flatten(0, 1))).unflatten(0, (batch, steps)), states

    def step(self, frame: torch.Tensor, states: list[Any] | None = None) -> tuple[torch.Tensor, list[Any]]:
        """One frame ``[B, C, S, S]`` in, the prediction of the next ``[B, C, S, S]`` and the new states out."""
        self._check_frames("frame", frame, 4)
        u = self.project(self.encoder(frame))
        states = self._check_states(states)
        for i, layer in enumerate(self.layers):
            u, states[i] = layer.step(u, states[i])
        return torch.tanh(self.decoder(u)), states

    def rollout(self, context: torch.Tensor, n_frames: int, cuda_graph: bool = False) -> torch.Tensor:
        """Condition on ``context [B, Tc, C, S, S]`` in parallel, then generate ``n_frames`` frames one at a time,
        each fed back as the next input: ``[B, n_frames, C, S, S]``, frames ``Tc .. Tc + n_frames - 1``.

        ``cuda_graph=True`` (CUDA, without gradients) captures the step once and replays it for every frame
        (``generate_with_cuda_graph``): the same frames, without the host's launches per frame."""
        if not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
        if cuda_graph:
            check_capturable(context.device)
        predictions, states = self(context)
        with self.fixed_step_weights():
            if cuda_graph:
                return generate_with_cuda_graph(self.step, predictions[:, -1], states, n_frames)
            frames = [predictions[:, -1]]
            for _ in range(n_frames - 1):
                frame, states = self.step(frames[-1], states)
                frames.append(frame)
        return torch.stack(frames, dim=1)

    def fixed_step_weights(self) -> AbstractContextManager:
        """A scope for generating frame by frame with unchanged parameters, in which layers may derive their step
        weights once instead of every frame (``ConvS5Video``'s discretisation); nothing by default."""
        return nullcontext()

    def _check_frames(self, name: str, frames: object, ndim: int) -> None:
        layout = "[B, T, C, H, W]" if ndim == 5 else "[B, C, H, W]"
        if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
            kind = frames.dtype if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise TypeError(f"{name} must be a floating-point tensor {layout}, got {kind}")
        expected = (self.channels, self.image_size, self.image_size)
        if frames.dim() != ndim or tuple(frames.shape[-3:]) != expected:
            raise ValueError(f"{name} must be {layout} with (C, H, W) = {expected}, got shape {tuple(frames.shape)}")

    def _check_states(self, states: list[Any] | None) -> list[Any]:
        if states is None:
            return [None] * len(self.layers)
        if not isinstance(states, (list, tuple)) or len(states) != len(self.layers):
            got = len(states) if isinstance(states, (list, tuple)) else type(states).__name__
            raise ValueError(f"states must be a list of one state per layer ({len(self.layers)}), got {got}")
        return list(states)
