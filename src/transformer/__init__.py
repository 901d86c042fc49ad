"""transformer: the encoder-decoder Transformer of "Attention Is All You Need", on PyTorch."""

from .config import Architecture, TransformerConfig
from .decoding import DecodeOptions, Generation, beam_search, greedy_search, search
from .model import AttentionMaps, Transformer

__all__ = [
    "Architecture",
    "AttentionMaps",
    "DecodeOptions",
    "Generation",
    "Transformer",
    "TransformerConfig",
    "beam_search",
    "greedy_search",
    "search",
]
__version__ = "0.1.0"
