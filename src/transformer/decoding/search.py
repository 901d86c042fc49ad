"""``search``: translate a batch of token ids with the options' method, greedy or beam search."""

from __future__ import annotations

from torch import Tensor

from .beam import beam_search
from .common import Generation, Seq2Seq
from .greedy import greedy_search
from .options import DecodeOptions


def search(model: Seq2Seq, src: Tensor, options: DecodeOptions | None = None) -> Generation:
    """The n-best translations of each sentence of ``src``: greedy decoding when ``options.greedy``, else beam
    search (both exact about ``max_len`` and ``min_len``; greedy equals beam search of size 1 with alpha 0).

    Shapes: src (B, S) int64, right-padded with pad_id -> Generation with tokens (B, n_best, L).
    """
    options = options or DecodeOptions()
    return greedy_search(model, src, options) if options.greedy else beam_search(model, src, options)
