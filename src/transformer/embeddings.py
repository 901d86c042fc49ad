"""Token embeddings and positional encodings (§3.4, §3.5).

Embedding(x) = E[x] * sqrt(d_model);
PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).

Shapes: B batch, T length, D d_model, V vocabulary.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import POSITIONAL_KINDS
from .ops.dropout import Dropout


def sinusoidal_encoding(n_positions: int, d_model: int, layout: str = "interleaved") -> Tensor:
    """The table of §3.5: sin(pos / 10000^(2i/D)) and cos(pos / 10000^(2i/D)) for i < D/2.

    ``layout="interleaved"`` (the paper's): sines in the even dimensions, cosines in the odd ones.
    ``layout="halves"`` (Marian's, fairseq's): all the sines first, then all the cosines. The two hold the same
    numbers, the dimensions permuted (``sinusoid_permutation``).
    Shapes: -> (n_positions, D) float32.
    """
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    angle = pos / torch.pow(10000.0, two_i / d_model)  # (P, ceil(D/2))
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe[:, sinusoid_permutation(d_model, layout)].float()


def sinusoid_permutation(d_model: int, layout: str) -> Tensor:
    """The dimensions of the interleaved table that make ``layout``'s: ``halves = interleaved[:, perm]``.

    Shapes: -> (D,) int64.
    """
    if layout == "interleaved":
        return torch.arange(d_model)
    if layout == "halves":
        return torch.cat([torch.arange(0, d_model, 2), torch.arange(1, d_model, 2)])
    raise ValueError(f"sinusoid layout {layout!r}: choose 'interleaved' or 'halves'")


class TokenEmbedding(nn.Module):
    """E[x] * sqrt(d_model): the scale keeps embeddings on the scale of the positional encoding (§3.4);
    ``scale=False`` leaves E[x] as it is (models trained that way, e.g. some Marian ones)."""

    def __init__(self, vocab_size: int, d_model: int, pad_id: int, scale: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.pad_id = pad_id
        self.scale = math.sqrt(d_model) if scale else 1.0

    def forward(self, tokens: Tensor) -> Tensor:
        """(B, T) int64 -> (B, T, D)."""
        return nn.functional.embedding(tokens, self.weight, self.pad_id) * self.scale


class PositionalEncoding(nn.Module):
    """Adds PE(offset + t) to position t, then dropout (§5.4: dropout on embeddings + encodings).

    ``kind="sinusoidal"`` is the paper's fixed table; ``kind="learned"`` a trained one (§3.5 found both nearly
    identical); ``kind="none"`` adds nothing (an ablation: then nothing tells the model the order). The
    sinusoidal table grows on demand, so any length works.
    """

    def __init__(
        self, d_model: int, max_positions: int, kind: str = "sinusoidal", dropout: float = 0.0,
        layout: str = "interleaved",
    ) -> None:
        super().__init__()
        if kind not in POSITIONAL_KINDS:
            raise ValueError(f"positional={kind!r}: choose one of {', '.join(POSITIONAL_KINDS)}")
        self.kind = kind
        self.layout = layout  # of the sinusoidal table, see ``sinusoidal_encoding``
        self.d_model = d_model
        self.max_positions = max_positions
        self.dropout = Dropout(dropout)
        if kind == "learned":
            self.table = nn.Parameter(torch.empty(max_positions, d_model))
        elif kind == "none":
            self.table = None
        else:
            self.register_buffer("table", sinusoidal_encoding(max_positions, d_model, layout), persistent=False)

    def encodings(self, start: int, length: int) -> Tensor:
        """PE for positions start .. start+length-1: -> (length, D)."""
        end = start + length
        if end > self.table.size(0):
            if self.kind == "learned":
                raise ValueError(f"position {end - 1} is past max_positions={self.max_positions} of learned encodings")
            table = sinusoidal_encoding(max(end, 2 * self.table.size(0)), self.d_model, self.layout)
            self.table = table.to(self.table.device)
        return self.table[start:end]

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """(B, T, D) -> (B, T, D); ``offset`` is the position of x[:, 0] (the step in incremental decoding)."""
        if self.table is None:  # positional="none": no order information at all (an ablation)
            return self.dropout(x)
        pe = self.encodings(offset, x.size(1)).to(x.dtype)
        return self.dropout(x + pe)
