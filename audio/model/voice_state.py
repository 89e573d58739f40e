"""Initial-state tuning (Lina-Speech's voice cloning): a learned low-rank initial state for every GLA block.

For layer ``l`` and head ``h``, with learned ``k [H, r, K]`` and ``v [H, r, V]``::

    S_0[h] = scale * sum_r k[h, r]^T v[h, r]        [K, V],   scale = 0.02

``k`` starts as N(0, 1) and ``v`` as 0.02 N(0, 1), as in the authors' code. The model stays frozen
(``model.requires_grad_(False)``): only these tensors are optimised (Adam, lr 0.1), on a speaker's clips, through
the gradient ``chunk_gla`` passes to its initial state. The result is passed as ``initial_states`` to
``LinaSpeech.forward``/``loss``/``generate``, so cloning needs no audio prompt. ``save``/``load`` write the factors
as safetensors (``layer{l}_k``, ``layer{l}_v``).
"""

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .lina import LinaSpeech


class VoiceState(nn.Module):
    """Rank-``rank`` initial states for layers of recurrent states ``[H, K, V]`` each (``state_shapes``)."""

    def __init__(self, state_shapes: list[tuple[int, int, int]], rank: int = 1, scale: float = 0.02) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be a positive int, got {rank!r}")
        self.scale = scale
        self.keys = nn.ParameterList(nn.Parameter(torch.randn(h, rank, k)) for h, k, _ in state_shapes)
        self.values = nn.ParameterList(nn.Parameter(0.02 * torch.randn(h, rank, v)) for h, _, v in state_shapes)

    @classmethod
    def for_model(cls, model: LinaSpeech, rank: int = 1, scale: float = 0.02) -> "VoiceState":
        """One state per GLA block of ``model``, encoder then decoder (the ``pos_net`` is not tuned)."""
        return cls([block.state_shape for block in model.gla_blocks], rank, scale)

    def initial_states(self) -> list[torch.Tensor]:
        """``S_0 [H, K, V]`` per layer."""
        return [
            self.scale * torch.einsum("hrk,hrv->hkv", keys, values)
            for keys, values in zip(self.keys, self.values, strict=True)
        ]

    def save(self, path: str | Path) -> None:
        """Write the factors and the scale to a safetensors file."""
        tensors = {}
        for layer, (keys, values) in enumerate(zip(self.keys, self.values, strict=True)):
            tensors[f"layer{layer}_k"] = keys.detach().cpu().contiguous()
            tensors[f"layer{layer}_v"] = values.detach().cpu().contiguous()
        save_file(tensors, str(path), metadata={"scale": repr(self.scale)})

    @classmethod
    def load(cls, path: str | Path) -> "VoiceState":
        """The ``VoiceState`` that ``save`` wrote to ``path``."""
        with safe_open(str(path), "pt") as file:
            metadata = file.metadata()
            tensors = {name: file.get_tensor(name) for name in file.keys()}
        layers = len(tensors) // 2
        keys = [tensors[f"layer{layer}_k"] for layer in range(layers)]
        values = [tensors[f"layer{layer}_v"] for layer in range(layers)]
        voice = cls([(k.shape[0], k.shape[2], v.shape[2]) for k, v in zip(keys, values, strict=True)], keys[0].shape[1])
        voice.scale = float(metadata["scale"])
        with torch.no_grad():
            for parameter, tensor in zip([*voice.keys, *voice.values], [*keys, *values], strict=True):
                parameter.copy_(tensor)
        return voice
