"""Skipping padding in the position-wise work: the real positions of a padded batch, packed into rows.

Every part of an encoder layer but attention acts on each position alone (the Q/K/V/O projections, the
feed-forward network, LayerNorm, dropout, the residual sums), so it can run on the N real positions of a
batch, (N, D), rather than on all B x L of them, (B, L, D). Attention needs the (B, H, L, Dh) layout, so its
inputs are unpacked (padding rows are zeros, which the mask excludes) and its output packed again
(``encoder_layer_on_rows``). Likewise the decoder's cross-attention keys and values, a projection of the
encoder output, are computed at its real positions only (``keys_values_on_rows``). Token-bucketed batches
are mostly real tokens, but a batch sorted on the target side only (as many samplers do) has its sources
mostly padding in places.

The encoder and decoder pack where it saves enough, below ``MAX_REAL_FRACTION`` real positions, and on the
CPU, where it was measured (on a GPU the padding costs less and counting the real positions would wait for
the device). The result is the same as the padded computation at every real position up to float rounding;
at padding positions the packed path leaves zeros, which no mask lets through.

Shapes: B batch, L padded length, N real positions, C channels, D d_model, H heads, Dh head dim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # for the annotations only: ops imports nothing of the model at run time
    from ..attention import MultiHeadAttention
    from ..layers import EncoderLayer

# Below about 90% real positions packing was measured faster, above it the two were within the noise
# (docs/performance.md); this leaves a margin.
MAX_REAL_FRACTION = 0.85


@dataclass(frozen=True)
class Packing:
    """Where the real positions of a (B, L) batch are: ``index`` (N,) int64 into the flattened B x L."""

    index: Tensor
    batch: int
    length: int

    @staticmethod
    def of(real: Tensor, max_real_fraction: float | None = None) -> Packing | None:
        """The packing of ``real`` (B, L) bool, True = a real token; None when more than
        ``max_real_fraction`` (default ``MAX_REAL_FRACTION``) of the positions are real, and off the CPU
        or under ``torch.compile`` (the number of real positions is data: a device sync, a graph break)."""
        if real.device.type != "cpu" or torch.compiler.is_compiling():
            return None
        b, length = real.shape
        limit = MAX_REAL_FRACTION if max_real_fraction is None else max_real_fraction
        index = real.reshape(-1).nonzero().squeeze(1)  # (N,)
        if index.numel() > limit * b * length:
            return None
        return Packing(index, b, length)

    def pack(self, x: Tensor) -> Tensor:
        """(B, L, C) -> (N, C): the real positions, in row-major order."""
        return x.reshape(self.batch * self.length, -1).index_select(0, self.index)

    def unpack(self, x: Tensor) -> Tensor:
        """(N, C) -> (B, L, C), zeros at the padding positions."""
        full = x.new_zeros(self.batch * self.length, x.size(-1))
        return full.index_copy_(0, self.index, x).view(self.batch, self.length, -1)  # in place: no clone of the zeros


def encoder_layer_on_rows(layer: EncoderLayer, rows: Tensor, src_mask: Tensor, packing: Packing) -> Tensor:
    """``layer(x, src_mask)`` computed on the real positions only: at each of them the same output, to rounding.

    The layer's two sublayers (``EncoderLayer.forward``) run on the packed rows; self-attention unpacks its
    projections to the (B, H, L, Dh) layout for the scores and packs the heads again before W_O.
    Shapes: rows (N, D) = ``packing.pack(x)``, src_mask (B, 1, 1, L) -> (N, D).
    """
    attn = layer.self_attn

    def self_attention(h: Tensor) -> Tensor:  # (N, D) -> (N, D)
        q, k, v = attn.split_qkv(packing.unpack(attn.w_qkv(h)))  # 3 x (B, H, L, Dh)
        heads, _ = attn.attend_heads(q, k, v, src_mask)  # (B, L, D)
        return attn.w_o(packing.pack(heads))

    rows = layer.attn_block(rows, self_attention)
    return layer.feed_forward_block(rows)


def keys_values_on_rows(attn: MultiHeadAttention, rows: Tensor, packing: Packing) -> tuple[Tensor, Tensor]:
    """``attn.project_kv(memory)`` computed at the memory's real positions only (zeros at padding, which the
    source mask excludes): the decoder's cross-attention keys and values of a mostly padded batch of sources.

    Shapes: rows (N, D) = ``packing.pack(memory)`` -> k, v (B, H, L, Dh).
    """
    d = attn.d_model
    return attn.split_kv(packing.unpack(attn.w_qkv.output_rows(rows, d, 3 * d)))  # from (B, L, 2D)
