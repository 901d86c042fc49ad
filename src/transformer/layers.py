"""Encoder and decoder layers (§3.1): each sublayer wrapped in a residual connection and LayerNorm.

Post-norm (the paper's): x = LayerNorm(x + Dropout(Sublayer(x))).
Pre-norm (``norm_first=True``): x = x + Dropout(Sublayer(LayerNorm(x))); the stack then ends in a
final LayerNorm (see ``transformer.model``).

Shapes: B batch, S source length, T target length, D d_model, H heads, Dh head dim, C cache capacity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from .attention import MultiHeadAttention
from .feed_forward import PositionwiseFeedForward
from .normalization import make_norm
from .ops.dropout import Dropout


class Residual(nn.Module):
    """A sublayer's residual connection, dropout (§5.4) and LayerNorm, in post- or pre-norm order.

    Ablations (``transformer.experiments``): another normalisation (``norm``, see ``transformer.normalization``),
    and ``residual=False``: LayerNorm(Dropout(Sublayer(x))), or Dropout(Sublayer(LayerNorm(x))) pre-norm.
    """

    def __init__(self, d_model: int, dropout: float, norm_first: bool, eps: float, norm: str = "layer",
                 residual: bool = True) -> None:
        super().__init__()
        self.norm = make_norm(norm, d_model, eps)
        self.dropout = Dropout(dropout)
        self.norm_first = norm_first
        self.residual = residual

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        if not self.residual:
            return self.dropout(sublayer(self.norm(x))) if self.norm_first else self.norm(self.dropout(sublayer(x)))
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))
        return self.norm(x + self.dropout(sublayer(x)))


@dataclass(frozen=True)
class Ablations:
    """The layers' ablation switches (``transformer.config.ABLATIONS``); the defaults are the paper's."""

    norm: str = "layer"
    scale_attention: bool = True
    residual: bool = True
    feed_forward: bool = True


def _feed_forward(
    d_model: int, d_ff: int, activation: str, dropout: float, activation_dropout: float | None, norm_first: bool,
    eps: float, ab: Ablations,
) -> tuple[PositionwiseFeedForward | None, Residual | None]:
    """The feed-forward sublayer and its residual block, or (None, None) without it (an ablation)."""
    if not ab.feed_forward:
        return None, None
    inner = dropout if activation_dropout is None else activation_dropout
    ffn = PositionwiseFeedForward(d_model, d_ff, activation, inner)
    return ffn, Residual(d_model, dropout, norm_first, eps, ab.norm, ab.residual)


class _Layer(nn.Module):
    """What encoder and decoder layers share: the feed-forward sublayer, which an ablation may leave out."""

    feed_forward: PositionwiseFeedForward | None
    ff_block: Residual | None

    def feed_forward_block(self, x: Tensor) -> Tensor:
        """The feed-forward sublayer with its residual connection (none: ``x``, an ablation)."""
        return x if self.ff_block is None else self.ff_block(x, self.feed_forward)


class EncoderLayer(_Layer):
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
        ablations: Ablations | None = None,
    ) -> None:
        super().__init__()
        ab = ablations or Ablations()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, ab.scale_attention)
        ffn, ff_block = _feed_forward(d_model, d_ff, activation, dropout, activation_dropout, norm_first, eps, ab)
        self.feed_forward = ffn  # registered in this order: the initialisation draws from the RNG in it
        self.attn_block = Residual(d_model, dropout, norm_first, eps, ab.norm, ab.residual)
        self.ff_block = ff_block

    def forward(self, x: Tensor, src_mask: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D), weights (B, H, S, S) or None."""
        weights: list[Tensor | None] = [None]

        def attend(h: Tensor) -> Tensor:
            out, weights[0] = self.self_attn(h, mask=src_mask, need_weights=need_weights)
            return out

        x = self.attn_block(x, attend)
        return self.feed_forward_block(x), weights[0]


class DecoderLayer(_Layer):
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
        ablations: Ablations | None = None,
    ) -> None:
        super().__init__()
        ab = ablations or Ablations()
        self.self_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, ab.scale_attention)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, attention_dropout, ab.scale_attention)
        ffn, ff_block = _feed_forward(d_model, d_ff, activation, dropout, activation_dropout, norm_first, eps, ab)
        self.feed_forward = ffn  # registered in this order: the initialisation draws from the RNG in it
        self.self_block = Residual(d_model, dropout, norm_first, eps, ab.norm, ab.residual)
        self.cross_block = Residual(d_model, dropout, norm_first, eps, ab.norm, ab.residual)
        self.ff_block = ff_block

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
        return self.feed_forward_block(x), weights[0], weights[1]

    def step(
        self,
        x: Tensor,
        self_k: Tensor,
        self_v: Tensor,
        step: int,
        cross_k: Tensor,
        cross_v: Tensor,
        src_mask: Tensor,
        key_slots: Tensor | None = None,
    ) -> Tensor:
        """One incremental step: writes this position's key/value into the cache in place.

        No causal mask is needed: the cache holds positions 0..step only. With g > 1 rows per source row (beam
        search) a row's earlier keys are found through ``key_slots`` (``DecoderState.key_slots``).
        Shapes: x (R, 1, D) with R = B g, self_k/self_v (B, H, C, g, Dh) with C > step, cross_k/cross_v
        (B, H, S, Dh), src_mask (B, 1, 1, S), key_slots (B, 1, g, step+1) or None (g = 1) -> (R, 1, D).
        """

        def self_attend(h: Tensor) -> Tensor:
            q, k, v = self.self_attn.project_qkv(h)  # 3 x (R, H, 1, Dh)
            b, heads, _, g, d_head = self_k.shape
            self_k[:, :, step] = k.view(b, g, heads, d_head).transpose(1, 2)  # (B, H, g, Dh) into slots 0..g-1
            self_v[:, :, step] = v.view(b, g, heads, d_head).transpose(1, 2)
            keys, values = self_k[:, :, : step + 1], self_v[:, :, : step + 1]  # (B, H, step+1, g, Dh)
            if key_slots is None:
                return self.self_attn.attend(q, keys[:, :, :, 0], values[:, :, :, 0], None)[0]
            return self.self_attn.attend_beams(q, keys, values, key_slots)

        def cross_attend(h: Tensor) -> Tensor:
            q = self.cross_attn.project_q(h)  # (R, H, 1, Dh)
            return self.cross_attn.attend(q, cross_k, cross_v, src_mask)[0]

        x = self.self_block(x, self_attend)
        x = self.cross_block(x, cross_attend)
        return self.feed_forward_block(x)
