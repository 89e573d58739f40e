"""Adapters for pretrained neural codecs whose weights a user has on disk (nothing is downloaded).

* ``EncodecCodec``: Meta's EnCodec 24 kHz (``pip install encodec``), 75 frames/s, 1024 codes a level; the
  bandwidth sets the levels (1.5, 3, 6, 12, 24 kbps -> 2, 4, 8, 16, 32 codebooks).
* ``WavTokenizerCodec``: WavTokenizer (the codec of the Lina-Speech release, 24 kHz, 75 frames/s, 1 level of
  4096 codes); its code is not on PyPI, so the ``WavTokenizer`` repository must be importable (its ``decoder``
  package on ``PYTHONPATH``).

Both check the weights path first, then the package, and raise ``FileNotFoundError`` / ``ImportError`` that say
what is missing and how to get it.
"""

import importlib
from pathlib import Path

import torch

from .base import AudioCodec

ENCODEC_BANDWIDTHS_KBPS = (1.5, 3.0, 6.0, 12.0, 24.0)


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {str(path)!r}: give the path of a local copy")
    return path


def _import(module: str, hint: str):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"this codec needs the {module!r} module, which is not installed: {hint}") from error


class EncodecCodec(AudioCodec):
    """EnCodec 24 kHz from a local state-dict file ``weights_path`` (e.g. ``encodec_24khz-d7cc33bc.th``).

    ``encode``: ``wav [B, T]`` -> ``codes [B, q, ceil(T / 320)]``; ``decode`` gives 320 samples a frame."""

    def __init__(self, weights_path: str | Path, bandwidth_kbps: float = 6.0):
        super().__init__()
        if bandwidth_kbps not in ENCODEC_BANDWIDTHS_KBPS:
            raise ValueError(f"bandwidth_kbps must be one of {ENCODEC_BANDWIDTHS_KBPS}, got {bandwidth_kbps}")
        path = _existing_file(weights_path, "EnCodec weights")
        encodec = _import("encodec", "pip install encodec")
        self.model = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
        self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.model.set_target_bandwidth(bandwidth_kbps)
        self.model.eval()
        self._n_codebooks = round(bandwidth_kbps * 1000 / (self.frame_rate * 10))

    @property
    def n_codebooks(self) -> int:
        return self._n_codebooks

    @property
    def codebook_size(self) -> int:
        return 1024

    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.cat([codes for codes, _ in self.model.encode(wav.unsqueeze(1))], dim=-1)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode([(codes, None)]).squeeze(1)


class WavTokenizerCodec(AudioCodec):
    """WavTokenizer from a local config YAML and checkpoint (e.g. the 75-token medium speech model).

    ``encode``: ``wav [B, T]`` -> ``codes [B, 1, F]``; ``decode`` gives 320 samples a frame."""

    def __init__(self, config_path: str | Path, weights_path: str | Path):
        super().__init__()
        config = _existing_file(config_path, "WavTokenizer config")
        weights = _existing_file(weights_path, "WavTokenizer weights")
        pretrained = _import(
            "decoder.pretrained", "clone https://github.com/jishengpeng/WavTokenizer and put it on PYTHONPATH"
        )
        self.model = pretrained.WavTokenizer.from_pretrained0802(str(config), str(weights)).eval()
        self.register_buffer("bandwidth_id", torch.tensor([0]), persistent=False)

    @property
    def n_codebooks(self) -> int:
        return 1

    @property
    def codebook_size(self) -> int:
        return 4096

    def _encode(self, wav: torch.Tensor) -> torch.Tensor:
        _, codes = self.model.encode_infer(wav, bandwidth_id=self.bandwidth_id)
        return codes.transpose(0, 1)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        features = self.model.codes_to_features(codes.transpose(0, 1))
        return self.model.decode(features, bandwidth_id=self.bandwidth_id)
