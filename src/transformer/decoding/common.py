"""What greedy and beam search share: output limits, forbidden tokens, the result type.

Shapes: B batch, N n-best, L output length, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..cache import DecoderState


class Seq2Seq(Protocol):
    """What a decoder needs of a model (``transformer.Transformer`` is one)."""

    def source_mask(self, src: Tensor) -> Tensor: ...
    def encode(self, src: Tensor) -> Tensor: ...
    def start_state(self, memory: Tensor, src_mask: Tensor, capacity: int = 64) -> DecoderState: ...
    def decode_step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]: ...


@dataclass(frozen=True)
class Generation:
    """n-best outputs: tokens without BOS/EOS, padded with pad_id, best first."""

    tokens: Tensor  # (B, N, L) int64
    scores: Tensor  # (B, N) float: log P(Y|X) / lp(Y) (lp = 1 for greedy)
    lengths: Tensor  # (B, N) int64, tokens before EOS


def output_limits(src: Tensor, pad_id: int, max_len: int | None, min_len: int) -> Tensor:
    """Most tokens each output may have: max_len, or by default its source length + 50 (§6.1).

    Shapes: src (B, S) -> (B,) int64, never below min_len nor 1.
    """
    if max_len is not None:
        if max_len < 1:
            raise ValueError(f"max_len={max_len} must be >= 1")
        limits = torch.full((src.size(0),), max_len, dtype=torch.long, device=src.device)
    else:
        limits = (src != pad_id).sum(dim=1) + 50
    return limits.clamp(min=max(min_len, 1))


def next_log_probs(logits: Tensor, step: int, min_len: int, pad_id: int, bos_id: int, eos_id: int) -> Tensor:
    """log softmax over the vocabulary, with tokens that may not come next at -inf.

    PAD and BOS are never generated; EOS not before ``min_len`` tokens. (R, V) -> (R, V) float32.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[:, pad_id] = -torch.inf
    logp[:, bos_id] = -torch.inf
    if step < min_len:
        logp[:, eos_id] = -torch.inf
    return logp


def strip_eos(tokens: Tensor, eos_id: int, pad_id: int) -> tuple[Tensor, Tensor]:
    """EOS and everything after it becomes pad; trims trailing all-pad columns.

    Shapes: (..., L) -> (..., L') and lengths (...,).
    """
    after = (tokens == eos_id).long().cumsum(-1) > 0
    tokens = tokens.masked_fill(after | (tokens == pad_id), pad_id)
    lengths = (tokens != pad_id).sum(-1)
    width = int(lengths.max()) if lengths.numel() else 0
    return tokens[..., : max(width, 0)], lengths


def check_source(src: Tensor) -> None:
    if src.dim() != 2 or src.size(0) == 0:
        raise ValueError(f"src must be a non-empty (batch, length) tensor, got shape {tuple(src.shape)}")
