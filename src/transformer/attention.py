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
import torch.nn.functional as F
from torch import Tensor, nn


def _sdpa_zeroes_empty_rows() -> bool:
    """Whether this torch's fused attention already returns zeros for fully masked rows."""
    q = torch.zeros(1, 1, 1, 2)
    mask = torch.zeros(1, 1, 1, 1, dtype=torch.bool)
    out = F.scaled_dot_product_attention(q, q[..., :1, :], q[..., :1, :], attn_mask=mask)
    return bool(torch.all(out == 0))


_SDPA_ZEROES_EMPTY_ROWS = _sdpa_zeroes_empty_rows()


def attention_reference(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0
) -> tuple[Tensor, Tensor]:
    """The formula written out, returning the weights too (for visualization and tests).

    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh), mask (B|1, 1|H, Tq|1, Tk) bool
    -> out (B, H, Tq, Dh), weights (B, H, Tq, Tk).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # A fully masked row would otherwise spread its weight uniformly over forbidden keys.
        weights = weights.masked_fill(~mask, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(Q K^T / sqrt(d_k)) V, by the fused kernel unless the weights are asked for.

    Args:
        q, k, v: queries, keys and values per head.
        mask: bool, True = may attend (see ``transformer.masks``); None = attend everywhere.
        dropout_p: dropout on the attention weights (0 in eval).
        need_weights: return the (B, H, Tq, Tk) weights; takes the explicit path.

    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh) -> out (B, H, Tq, Dh), weights or None.
    """
    if need_weights:
        return attention_reference(q, k, v, mask, dropout_p)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if mask is not None and not _SDPA_ZEROES_EMPTY_ROWS:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out, None


class MultiHeadAttention(nn.Module):
    """Multi-head attention with a fused Q/K/V projection (§3.2.2).

    ``w_qkv`` holds W_Q, W_K and W_V stacked as one (3D, D) matrix, so self-attention projects once;
    cross-attention uses its first third on the queries and the rest on the memory. ``w_o`` is W_O.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.w_qkv = nn.Linear(d_model, 3 * d_model)
        self.w_o = nn.Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def project_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of a memory, computed once per source for cross-attention.

        Shapes: memory (B, S, D) -> k, v (B, H, S, Dh).
        """
        d = self.d_model
        kv = F.linear(memory, self.w_qkv.weight[d:], self.w_qkv.bias[d:])  # (B, S, 2D)
        k, v = kv.split(d, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def project_q(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        d = self.d_model
        return self.split_heads(F.linear(x, self.w_qkv.weight[:d], self.w_qkv.bias[:d]))

    def project_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Self-attention projections in one matmul: (B, T, D) -> 3 x (B, H, T, Dh)."""
        q, k, v = self.w_qkv(x).split(self.d_model, dim=-1)  # 3 x (B, T, D)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Attention per head, concatenation and W_O.

        Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh) -> (B, Tq, D), weights (B, H, Tq, Tk) or None.
        """
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask, p, need_weights)
        b, _, t, _ = out.shape
        out = out.transpose(1, 2).reshape(b, t, self.d_model)  # (B, Tq, D)
        return self.w_o(out), weights

    def forward(
        self,
        query: Tensor,
        memory: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = False,
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
