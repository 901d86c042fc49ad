"""Fixtures of the visualization tests: a word-level vocabulary and a tiny random model around it.

No trained checkpoint and no SentencePiece model is needed: ``WordVocab`` is a fixed word list with the
project's special ids (pad 0, bos 1, eos 2, unk 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from transformer import Transformer, TransformerConfig
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
def viz_model() -> Transformer:
    """Random tiny model over ``WORDS``: 2 encoder and 3 decoder layers (distinct, to catch mix-ups), 2 heads."""
    torch.manual_seed(0)
    cfg = TransformerConfig(
        src_vocab_size=len(WORDS), tgt_vocab_size=len(WORDS), d_model=16, n_heads=2, d_ff=32,
        n_encoder_layers=2, n_decoder_layers=3, dropout=0.0,
    )
    return Transformer(cfg).eval()


class ShortTranslator(Translator):
    """A random model rarely stops on its own; at most 6 output tokens keep the pictures (and tests) small."""

    def translate(self, texts, beam_size=4, n_best=1, length_penalty=0.6, max_len=None):
        return super().translate(texts, beam_size, n_best, length_penalty, max_len=6 if max_len is None else max_len)


@pytest.fixture
def short_translator(viz_model, word_vocab) -> Translator:
    """The real Translator over the tiny random model, its outputs capped at 6 tokens."""
    return ShortTranslator(viz_model, word_vocab, word_vocab)
