"""What greedy and beam search share: the model protocol, output limits, forbidden tokens, the result type.

Shapes: B batch, N n-best, L output length, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..cache import DecoderState
from ..config import TransformerConfig
from .options import DecodeOptions

# Sentences that are done leave the batch once at least this fraction of those still decoded are done (each
# time the cache is copied once, so not for every single finished sentence).
DROP_FINISHED_FRACTION = 0.25


class Seq2Seq(Protocol):
    """What decoding needs of a model: ``transformer.Transformer`` is one, and so is any model with these
    methods (the tests' stub models with fixed probability tables). Decoding imports nothing else of the model.
    """

    cfg: TransformerConfig  # pad_id, bos_id, eos_id

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


# With max_len None, an output may be this many tokens longer than its source (§6.1: "input length + 50").
EXTRA_OUTPUT_TOKENS = 50


def output_limits(src: Tensor, pad_id: int, options: DecodeOptions) -> Tensor:
    """Most tokens each output may have: ``options.max_len``, or its source length + 50 (§6.1).

    Shapes: src (B, S) -> (B,) int64, never below min_len nor 1.
    """
    if options.max_len is not None:
        limits = torch.full((src.size(0),), options.max_len, dtype=torch.long, device=src.device)
    else:
        limits = (src != pad_id).sum(dim=1) + EXTRA_OUTPUT_TOKENS
    return limits.clamp(min=max(options.min_len, 1))


def top_next_tokens(
    logits: Tensor, k: int, step: int, min_len: int, pad_id: int, bos_id: int, eos_id: int
) -> tuple[Tensor, Tensor]:
    """The ``k`` most probable next tokens of each row and their log-probabilities, log softmax(logits)_v,
    among the tokens that may come next: PAD and BOS never, EOS not before ``min_len`` tokens (-inf).

    Equal probabilities (frequent in bfloat16 or int8 inference) go to the lower token id first, as
    ``torch.max`` picks them: so beam search of width 1 makes greedy decoding's choices. Fewer than k tokens
    in the vocabulary: all of them. A float32 ``logits`` is overwritten (with the log-probabilities: a step's
    logits are used once, and writing them in place spares a (R, V) buffer, the largest of a step).
    Shapes: logits (R, V) -> log-probabilities (R, k') float32, tokens (R, k') int64, k' = min(k, V), best first.
    """
    logits = logits.float()  # (R, V): itself if float32
    logp = torch.log_softmax(logits, dim=-1, out=logits)  # (R, V)
    logp[:, pad_id] = -torch.inf
    logp[:, bos_id] = -torch.inf
    if step < min_len:
        logp[:, eos_id] = -torch.inf
    if k == 1:
        values, tokens = logp.max(dim=-1)  # the first of equal maxima
        return values[:, None], tokens[:, None]
    # 2 more than asked, so that a tie of up to 3 at the k-th place has all its tokens here to order
    values, tokens = _top_k(logp, min(k + 2, logp.size(-1)))
    tokens, by_id = tokens.sort(dim=-1, stable=True)
    values, order = values.gather(1, by_id).sort(dim=-1, descending=True, stable=True)
    return values[:, :k], tokens.gather(1, order)[:, :k]


# About this many chunks in ``_top_k``: their width is the power of two nearest V / TOP_K_CHUNKS (32 columns
# for 8k tokens, 128 for 32k: measured fastest there, 1.4x and 2.8x faster than one topk over 256 rows).
TOP_K_CHUNKS = 250


def _top_k(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """``x.topk(k, dim=-1)`` by chunks: the k largest of a row lie in the k chunks of c columns with the
    largest maxima (a chunk holding one of them has a maximum at least that large, and no k other chunks can
    have larger ones), so one ``amax`` pass over x and a topk over k chunks replace topk over the whole row
    (topk is one of the costliest ops of a beam step).

    Shapes: x (R, V) -> values (R, k), indices (R, k) int64, largest first.
    """
    rows, vocab = x.shape
    c = 2 ** round(math.log2(max(vocab / TOP_K_CHUNKS, 1)))
    if vocab < 8 * k * c:  # few chunks: no gain
        return x.topk(k, dim=-1)
    whole = vocab - vocab % c  # the columns in whole chunks; the rest, under c, are candidates as they are
    chunks = x[:, :whole].view(rows, whole // c, c)  # (R, V/c, c), a view
    _, best = chunks.amax(dim=-1).topk(k, dim=-1)  # (R, k) the chunks with the k largest maxima
    columns = (best[:, :, None] * c + torch.arange(c, device=x.device)).view(rows, k * c)  # (R, k c)
    if whole < vocab:
        columns = torch.cat([columns, torch.arange(whole, vocab, device=x.device).expand(rows, -1)], dim=1)
    values, idx = x.gather(1, columns).topk(k, dim=-1)
    return values, columns.gather(1, idx)


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
