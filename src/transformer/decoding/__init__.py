"""Decoding: greedy and beam search over the key/value cache, batched, no loop over sentences.

``search(model, src, DecodeOptions(...))`` returns a ``Generation`` (the n-best token ids and scores);
``Transformer.generate`` is the same search returning the best hypotheses' tokens. Decoding needs of a model
only the ``Seq2Seq`` protocol (``encode``, ``source_mask``, ``start_state``, ``decode_step``, ``cfg``).
"""

from .beam import beam_search
from .common import Generation, Seq2Seq
from .greedy import greedy_search
from .length_penalty import gnmt_length_penalty, length_penalty, power_length_penalty
from .options import DecodeOptionError, DecodeOptions
from .search import search

__all__ = [
    "DecodeOptionError",
    "DecodeOptions",
    "Generation",
    "Seq2Seq",
    "beam_search",
    "gnmt_length_penalty",
    "length_penalty",
    "power_length_penalty",
    "greedy_search",
    "search",
]
