"""DecodeOptions: how to decode, declared once. The run config's ``[decode]`` section, the command line's decoding
options, the service's defaults and requests, ``Transformer.generate`` and ``Translator.translate`` all take it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import Tensor

from .length_penalty import LENGTH_NORMALIZATIONS, length_penalty


class DecodeOptionError(ValueError):
    """A decoding option out of range: ``field`` (a ``DecodeOptions`` field name), its ``value`` and what it
    ``must`` be, e.g. ``beam_size=0 must be >= 1``. Callers name the field their own way (``--beam-size``)."""

    def __init__(self, field: str, value: object, must: str) -> None:
        self.field, self.value, self.must = field, value, must
        super().__init__(f"{field}={value!r} must be {must}")


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings; the defaults are the paper's (§6.1): beam 4, length penalty alpha 0.6, outputs of at
    most the source length + 50 tokens.

    Attributes:
        beam_size: hypotheses kept per sentence; 1 with ``n_best`` 1 is greedy decoding.
        n_best: hypotheses returned per sentence, best first (<= beam_size).
        length_penalty: alpha of the length normalisation; hypotheses score log P(Y|X) / lp(Y); 0 ranks by log P
            alone. Beam search only.
        max_len: most tokens per output (EOS not counted); None: the sentence's source length + 50.
        min_len: no EOS before this many tokens.
        length_normalization: lp(Y): "gnmt", ((5 + |Y|) / 6)^alpha (the paper's, §6.1), or "power", |Y|^alpha
            (Hugging Face's and CTranslate2's); see ``transformer.decoding.length_penalty``.
    """

    beam_size: int = 4
    n_best: int = 1
    length_penalty: float = 0.6
    max_len: int | None = None
    min_len: int = 0
    length_normalization: str = "gnmt"

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise DecodeOptionError("beam_size", self.beam_size, ">= 1")
        if not 1 <= self.n_best <= self.beam_size:
            raise DecodeOptionError("n_best", self.n_best, f"between 1 and beam_size ({self.beam_size})")
        if self.length_penalty < 0:  # beam search's stopping bound needs lp to grow with length
            raise DecodeOptionError("length_penalty", self.length_penalty, ">= 0")
        if self.max_len is not None and self.max_len < 1:
            raise DecodeOptionError("max_len", self.max_len, ">= 1")
        if self.min_len < 0:
            raise DecodeOptionError("min_len", self.min_len, ">= 0")
        if self.length_normalization not in LENGTH_NORMALIZATIONS:
            raise DecodeOptionError("length_normalization", self.length_normalization,
                                    f"one of {', '.join(LENGTH_NORMALIZATIONS)}")

    def lp(self, length: int | Tensor) -> float | Tensor:
        """lp(|Y|): what a hypothesis of ``length`` tokens (EOS counted) has its log-probability divided by."""
        return length_penalty(length, self.length_penalty, self.length_normalization)

    @property
    def greedy(self) -> bool:
        """One hypothesis kept and returned: the most probable token at every step."""
        return self.beam_size == 1 and self.n_best == 1

    def override(self, **changes: object) -> DecodeOptions:
        """These options with some fields changed (``dataclasses.replace``; None values are left unchanged, so
        that optional command-line or request fields can be passed through); unknown names are a TypeError."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
