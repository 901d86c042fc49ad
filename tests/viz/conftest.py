"""Fixtures of the visualization tests: a word-level vocabulary and a tiny random model around it.

No trained checkpoint and no SentencePiece model is needed: ``WordVocab`` is a fixed word list with the
project's special ids (pad 0, bos 1, eos 2, unk 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from transformer import DecodeOptions, Transformer
from transformer.translator import Translator

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "$5", "die", "Katze"]


class WordVocab:
    """Whitespace-separated words; ids are positions in ``WORDS``, unknown words map to <unk>."""

    def __init__(self, words: Sequence[str] = WORDS) -> None:
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 3) for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[i] for i in ids if i > 3)

    def pieces(self, text: str) -> list[str]:
        return [self.words[i] for i in self.encode(text)]

    def id_to_piece(self, i: int) -> str:
        return self.words[i]

    def __len__(self) -> int:
        return len(self.words)


@pytest.fixture
def word_vocab() -> WordVocab:
    return WordVocab()


@pytest.fixture
def viz_model(make_cfg) -> Transformer:
    """Random tiny model over ``WORDS``: 2 encoder and 3 decoder layers (distinct, to catch mix-ups), 2 heads."""
    torch.manual_seed(0)
    return Transformer(make_cfg(src_vocab_size=len(WORDS), tgt_vocab_size=len(WORDS), n_decoder_layers=3)).eval()


@pytest.fixture
def short_translator(viz_model, word_vocab) -> Translator:
    """The real Translator over the tiny random model, its outputs capped at 6 tokens (a random model rarely stops
    on its own; short outputs keep the pictures, and the tests, small)."""
    return Translator(viz_model, word_vocab, word_vocab, decode=DecodeOptions(max_len=6))
