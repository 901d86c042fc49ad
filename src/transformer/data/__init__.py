"""Data: corpus reading, SentencePiece vocabularies, batching, corpus preparation, downloads.

The model package imports nothing from here; the trainer, the translator and the command line do.
"""

from .batching import Batch, TokenBatchSampler, collate, source_ids
from .corpus import CorpusError, clean_pairs, normalize_line, read_lines, read_parallel
from .prepare import EncodedCorpus, PreparedData, prepare
from .vocab import Vocab, load_vocabs

__all__ = [
    "Batch",
    "CorpusError",
    "EncodedCorpus",
    "PreparedData",
    "TokenBatchSampler",
    "Vocab",
    "clean_pairs",
    "collate",
    "load_vocabs",
    "normalize_line",
    "prepare",
    "read_lines",
    "read_parallel",
    "source_ids",
]
