"""Scaled dot-product and multi-head attention (§3.2.1, §3.2.2).

Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V; MultiHead = Concat(head_1..head_h) W_O with
head_i = Attention(Q W_Q_i, K W_K_i, V W_V_i).

Masks follow the project convention (``transformer.masks``): bool, True = may attend, broadcast to
(B, H, T_q, T_k). A query whose keys are all masked gets an output of zeros and weights of zeros,
never NaN.

Shapes: B batch, H heads, Tq query length, Tk key length, D d_model, Dh = D / H head dim.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .ops.dropout import dropout
from .ops.linear import Linear
from .ops.sdpa import formula_is_faster, fused_attention


def attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0, need_weights: bool = False,
    scale: float | None = None,
) -> tuple[Tensor, Tensor | None]:
    """softmax(Q K^T / sqrt(d_k)) V, written out in two batched matmuls; the weights too when asked.
    ``scale`` replaces 1 / sqrt(d_k) (an ablation: 1.0 leaves the dot products unscaled).

    Masked keys get weight 0; a query with no key to attend to gets weights 0 and output 0, never NaN.
    Dropout (training only, ``dropout_p``) acts on the weights, after they are returned.
    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh), mask (B|1, 1|H, Tq|1, Tk) bool
    -> out (B, H, Tq, Dh), weights (B, H, Tq, Tk) or None.
    """
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (B, H, Tq, Tk)
    blocked = None if mask is None else ~mask
    if blocked is not None:
        scores.masked_fill_(blocked, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if blocked is not None:
        empty = blocked.all(dim=-1, keepdim=True)  # (B|1, 1|H, Tq|1, 1): softmax spread these rows evenly
        if bool(empty.any()):
            weights = weights.masked_fill(empty, 0.0)
    out = torch.matmul(dropout(weights, dropout_p), v)  # (B, H, Tq, Dh)
    return out, (weights if need_weights else None)


def lineage_attention(q: Tensor, k: Tensor, v: Tensor, slots: Tensor, scale: float | None = None) -> Tensor:
    """Attention of g beams over the keys of their own histories, which lie among their sentence's shared slots:
    out_j = sum_s softmax_s(q_j . k[slots_js] / sqrt(d_k)) v[slots_js].

    Each query is scored against all T g keys of its sentence in one matmul (no gather of keys: a beam search
    reorder then copies no cache), its own T kept; the weights go back to their slots, zeros elsewhere, for the
    product with the values. The same weights as ``attention`` over each beam's keys in order, to rounding.
    Shapes: q (B, H, g, Dh), k and v (B, H, T g, Dh), slots (B, 1|H, g, T) int64 indices into T g
    -> (B, H, g, Dh).
    """
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    every = torch.matmul(q, k.transpose(-2, -1))  # (B, H, g, T g): each beam against every slot
    slots = slots.expand(*every.shape[:2], *slots.shape[2:])  # (B, H, g, T)
    weights = torch.softmax(every.gather(-1, slots).mul_(scale), dim=-1)  # (B, H, g, T)
    return torch.matmul(every.zero_().scatter_(-1, slots, weights), v)  # (B, H, g, Dh)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
    scale: float | None = None,
) -> tuple[Tensor, Tensor | None]:
    """softmax(Q K^T / sqrt(d_k)) V by ``attention``, or by PyTorch's fused kernel where that is faster and the
    weights are not wanted (``transformer.ops.sdpa``); the same values either way, to rounding.

    Args:
        q, k, v: queries, keys and values per head.
        mask: bool, True = may attend (see ``transformer.masks``); None = attend everywhere.
        dropout_p: dropout on the attention weights (0 in eval).
        need_weights: return the (B, H, Tq, Tk) weights.
        scale: in place of 1 / sqrt(d_k) (None: that; an ablation sets 1.0).

    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh) -> out (B, H, Tq, Dh), weights or None.
    """
    if need_weights or formula_is_faster(q, k):
        return attention(q, k, v, mask, dropout_p, need_weights, scale)
    return fused_attention(q, k, v, mask, dropout_p, scale), None


class MultiHeadAttention(nn.Module):
    """Multi-head attention with a fused Q/K/V projection (§3.2.2).

    ``w_qkv`` holds W_Q, W_K and W_V stacked as one (3D, D) matrix, so self-attention projects once;
    cross-attention uses its first third on the queries and the rest on the memory. ``w_o`` is W_O.
    ``scale=False`` (an ablation) leaves out the 1 / sqrt(d_k).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, scale: bool = True) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.scale = None if scale else 1.0  # None: 1 / sqrt(d_k)
        self.w_qkv = Linear(d_model, 3 * d_model)
        self.w_o = Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of a memory (cross-attention): (B, S, D) -> k, v (B, H, S, Dh)."""
        d = self.d_model
        return self.split_kv(self.w_qkv.output_rows(memory, d, 3 * d))

    def split_kv(self, kv: Tensor) -> tuple[Tensor, Tensor]:
        """The key/value part of ``w_qkv``'s output into heads: (B, S, 2D) -> 2 x (B, H, S, Dh)."""
        k, v = kv.split(self.d_model, dim=-1)  # 2 x (B, S, D)
        return self.split_heads(k), self.split_heads(v)

    def project_q(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        d = self.d_model
        return self.split_heads(self.w_qkv.output_rows(x, 0, d))

    def project_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention projections in one matmul: (B, T, D) -> 3 x (B, H, T, Dh)."""
        return self.split_qkv(self.w_qkv(x))

    def split_qkv(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``w_qkv``'s output into heads: (B, T, 3D) -> 3 x (B, H, T, Dh)."""
        q, k, v = qkv.split(self.d_model, dim=-1)  # 3 x (B, T, D)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Attention per head, concatenation and W_O.

        ``q`` may hold g rows per row of ``k`` and ``v`` (beam search: the g beams of a sentence share its
        cross-attention keys): they attend as g x Tq queries of that row, so the keys are neither copied g
        times nor read g times; ``mask`` then has one row per key row and one query row.
        Shapes: q (R, H, Tq, Dh) with R = g * B, k and v (B, H, Tk, Dh) -> (R, Tq, D), weights (R, H, Tq, Tk)
        or None.
        """
        heads, weights = self.attend_heads(q, k, v, mask, need_weights)
        return self.w_o(heads), weights

    def attend_beams(self, q: Tensor, k: Tensor, v: Tensor, slots: Tensor) -> Tensor:
        """Self-attention of one decoding step for the g beams of each sentence over the keys of their own
        histories (``lineage_attention``; ``transformer.cache`` says where they lie), concatenation and W_O.
        Shapes: q (B g, H, 1, Dh), k and v (B, H, T, g, Dh), slots (B, 1, g, T) -> (B g, 1, D).
        """
        b, heads, t, g, d_head = k.shape
        q = q.view(b, g, heads, d_head).transpose(1, 2)  # (B, H, g, Dh)
        flat = (b, heads, t * g, d_head)  # positions outer, slots inner: a view
        out = lineage_attention(q, k.reshape(flat), v.reshape(flat), slots, self.scale)  # (B, H, g, Dh)
        return self.w_o(out.transpose(1, 2).reshape(b * g, 1, self.d_model))

    def attend_heads(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``attend`` without W_O: the heads' outputs concatenated, (R, Tq, D), and the weights or None."""
        p = self.dropout if self.training else 0.0
        rows, heads, t, d_head = q.shape
        g = rows // k.size(0) if k.size(0) else 1
        if g > 1:
            q = q.view(-1, g, heads, t, d_head).transpose(1, 2).reshape(-1, heads, g * t, d_head)  # (B, H, gTq, Dh)
        out, weights = scaled_dot_product_attention(q, k, v, mask, p, need_weights, self.scale)
        if g > 1:
            out = out.view(-1, heads, g, t, d_head).transpose(1, 2).reshape(rows, heads, t, d_head)
            if weights is not None:
                weights = weights.view(-1, heads, g, t, k.size(2)).transpose(1, 2).reshape(rows, heads, t, -1)
        return out.transpose(1, 2).reshape(rows, t, self.d_model), weights  # (R, Tq, D)

    def forward(
        self, query: Tensor, memory: Tensor | None = None, mask: Tensor | None = None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Self-attention when ``memory`` is None, else attention of ``query`` over ``memory``.

        Shapes: query (B, Tq, D), memory (B, Tk, D), mask broadcastable to (B, H, Tq, Tk)
        -> (B, Tq, D), weights (B, H, Tq, Tk) or None.
        """
        if memory is None:
            q, k, v = self.project_qkv(query)
        else:
            q = self.project_q(query)
            k, v = self.project_kv(memory)
        return self.attend(q, k, v, mask, need_weights)
