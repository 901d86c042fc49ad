"""Encoder and decoder layers (§3.1): each sublayer wrapped in a residual connection and LayerNorm.

Post-norm (the paper's): x = LayerNorm(x + Dropout(Sublayer(x))).
Pre-norm (``norm_first=True``): x = x + Dropout(Sublayer(LayerNorm(x))); the stack then ends in a
final LayerNorm (see ``transformer.model``).

Shapes: B batch, S source length, T target length, D d_model, H heads, Dh head dim, C cache capacity.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .attention import MultiHeadAttention
from .feed_forward import PositionwiseFeedForward
from .ops.dropout import Dropout


class Residual(nn.Module):
    """A sublayer's residual connection, dropout (§5.4) and LayerNorm, in post- or pre-norm order."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


class EncoderLayer(nn.Module):
    """Self-attention, then the position-wise feed-forward network."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float | None = None,
        activation: str = "relu",
        norm_first: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.feed_forward = PositionwiseFeedForward(
            d_model, d_ff, activation, dropout if activation_dropout is None else activation_dropout)
        self.attn_block = Residual(d_model, dropout, norm_first, eps)
        self.ff_block = Residual(d_model, dropout, norm_first, eps)

    def forward(self, x: Tensor, src_mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D), weights (B, H, S, S) or None."""
        weights: list[Tensor | None] = [None]

        def attend(h: Tensor) -> Tensor:
            out, weights[0] = self.self_attn(h, mask=src_mask, need_weights=need_weights)
            return out

        x = self.attn_block(x, attend)
        return self.ff_block(x, self.feed_forward), weights[0]


class DecoderLayer(nn.Module):
    """Masked self-attention, attention over the encoder output, then the feed-forward network."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float | None = None,
        activation: str = "relu",
        norm_first: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attention_dropout)
        self.feed_forward = PositionwiseFeedForward(
            d_model, d_ff, activation, dropout if activation_dropout is None else activation_dropout)
        self.self_block = Residual(d_model, dropout, norm_first, eps)
        self.cross_block = Residual(d_model, dropout, norm_first, eps)
        self.ff_block = Residual(d_model, dropout, norm_first, eps)

    def forward(
        self, x: Tensor, cross_k: Tensor, cross_v: Tensor, tgt_mask: Tensor, src_mask: Tensor,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Teacher-forced pass over a whole target. ``cross_k``/``cross_v`` are this layer's keys and values of the
        encoder output (§3.2.3: "the memory keys and values come from the output of the encoder"), computed once
        per source, ``cross_attn.project_kv(memory)``, as for incremental decoding (``step``).

        Shapes: x (B, T, D), cross_k/cross_v (B, H, S, Dh), tgt_mask (B, 1, T, T), src_mask (B, 1, 1, S)
        -> (B, T, D), self weights (B, H, T, T) or None, cross weights (B, H, T, S) or None.
        """
        weights: list[Tensor | None] = [None, None]

        def self_attend(h: Tensor) -> Tensor:
            out, weights[0] = self.self_attn(h, mask=tgt_mask, need_weights=need_weights)
            return out

        def cross_attend(h: Tensor) -> Tensor:
            out, weights[1] = self.cross_attn.attend(self.cross_attn.project_q(h), cross_k, cross_v, src_mask,
                                                     need_weights)
            return out

        x = self.self_block(x, self_attend)
        x = self.cross_block(x, cross_attend)
        return self.ff_block(x, self.feed_forward), weights[0], weights[1]

    def step(
        self,
        x: Tensor,
        self_k: Tensor,
        self_v: Tensor,
        step: int,
        cross_k: Tensor,
        cross_v: Tensor,
        src_mask: Tensor,
    ) -> Tensor:
        """One incremental step: writes this position's key/value into the cache in place.

        No causal mask is needed: the cache holds positions 0..step only.
        Shapes: x (B, 1, D), self_k/self_v (B, H, C, Dh) with C > step, cross_k/cross_v (B, H, S, Dh),
        src_mask (B, 1, 1, S) -> (B, 1, D).
        """

        def self_attend(h: Tensor) -> Tensor:
            q, k, v = self.self_attn.project_qkv(h)  # 3 x (B, H, 1, Dh)
            self_k[:, :, step : step + 1] = k
            self_v[:, :, step : step + 1] = v
            keys, values = self_k[:, :, : step + 1], self_v[:, :, : step + 1]  # (B, H, step+1, Dh)
            return self.self_attn.attend(q, keys, values, None)[0]

        def cross_attend(h: Tensor) -> Tensor:
            q = self.cross_attn.project_q(h)  # (B, H, 1, Dh)
            return self.cross_attn.attend(q, cross_k, cross_v, src_mask)[0]

        x = self.self_block(x, self_attend)
        x = self.cross_block(x, cross_attend)
        return self.ff_block(x, self.feed_forward)
