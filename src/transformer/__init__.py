"""transformer: the encoder-decoder Transformer of "Attention Is All You Need", on PyTorch."""

from .config import TransformerConfig
from .decoding import Generation, beam_search, greedy_search
from .model import AttentionMaps, Transformer

__all__ = ["AttentionMaps", "Generation", "Transformer", "TransformerConfig", "beam_search", "greedy_search"]
__version__ = "0.1.0"
