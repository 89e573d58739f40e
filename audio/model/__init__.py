"""The Lina-Speech model: text encoder, GLA blocks, blind cross-attention, the language model, voice states."""

from .blocks import GLABlock
from .cross_attention import BlindCrossAttention, ConvPos, TextMemory
from .lina import LinaCache, LinaSpeech
from .swiglu import SwiGLU
from .text_encoder import TextEncoder
from .voice_state import VoiceState

__all__ = [
    "BlindCrossAttention",
    "ConvPos",
    "GLABlock",
    "LinaCache",
    "LinaSpeech",
    "SwiGLU",
    "TextEncoder",
    "TextMemory",
    "VoiceState",
]
