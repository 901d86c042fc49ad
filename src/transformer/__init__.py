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


def __getattr__(name: str) -> str:
    """``transformer.__version__``: the installed package's, read when asked (``transformer --version`` prints it)."""
    if name == "__version__":
        from .cli import package_version

        return package_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
