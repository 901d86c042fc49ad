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

from .dropout import dropout
from .linear import Linear
from .packing import Packing


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


# On the CPU the fused kernel's blocking is built for long sequences; up to these lengths the formula in two
# batched matmuls (``explicit_attention``) is faster. Measured on 2 cores: up to 16 queries per row (a
# decoding step: one query, or the g beams of a sentence over its shared cross-attention keys; 2-4.6x
# faster at 64 rows x 4-8 heads x 4 queries x 20 keys), and training (forward + backward) with up to 64 keys,
# where the fused backward is 1.4-1.8x slower than autograd through the formula (4 heads x 15-64 tokens).
EXPLICIT_MAX_QUERIES = 16
EXPLICIT_MAX_KEYS_TRAINING = 64


def explicit_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, dropout_p: float = 0.0) -> Tensor:
    """The formula in two batched matmuls, without returning the weights; dropout on the weights.

    Fully masked rows give zeros, as everywhere.
    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh), mask (B|1, 1|H, Tq|1, Tk) bool -> (B, H, Tq, Dh).
    """
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(1.0 / math.sqrt(q.size(-1)))  # (B, H, Tq, Tk)
    if mask is None:
        return torch.matmul(dropout(torch.softmax(scores, dim=-1), dropout_p), v)
    blocked = ~mask
    scores.masked_fill_(blocked, torch.finfo(scores.dtype).min)
    out = torch.matmul(dropout(torch.softmax(scores, dim=-1), dropout_p), v)  # (B, H, Tq, Dh)
    empty = blocked.all(dim=-1, keepdim=True)  # (B|1, 1|H, Tq|1, 1)
    return out.masked_fill_(empty, 0.0) if bool(empty.any()) else out


def _explicit_is_faster(q: Tensor, k: Tensor) -> bool:
    if q.device.type != "cpu":
        return False
    if q.size(-2) <= EXPLICIT_MAX_QUERIES:
        return True
    training = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad)
    return training and k.size(-2) <= EXPLICIT_MAX_KEYS_TRAINING


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(Q K^T / sqrt(d_k)) V, by the fused kernel unless the weights are asked for or the CPU
    does short sequences faster by ``explicit_attention``.

    Args:
        q, k, v: queries, keys and values per head.
        mask: bool, True = may attend (see ``transformer.masks``); None = attend everywhere.
        dropout_p: dropout on the attention weights (0 in eval).
        need_weights: return the (B, H, Tq, Tk) weights; takes the explicit path.

    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh) -> out (B, H, Tq, Dh), weights or None.
    """
    if need_weights:
        return attention_reference(q, k, v, mask, dropout_p)
    if _explicit_is_faster(q, k):
        return explicit_attention(q, k, v, mask, dropout_p), None
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
        self.w_qkv = Linear(d_model, 3 * d_model)
        self.w_o = Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

    def project_kv(self, memory: Tensor, packing: Packing | None = None) -> tuple[Tensor, Tensor]:
        """Keys and values of a memory, computed once per source for cross-attention; with ``packing``
        (of the memory's real positions) only at those, zeros elsewhere.

        Shapes: memory (B, S, D) -> k, v (B, H, S, Dh).
        """
        d = self.d_model
        if packing is None:
            kv = self.w_qkv.rows(memory, d, 3 * d)  # (B, S, 2D)
        else:
            kv = packing.unpack(self.w_qkv.rows(packing.pack(memory), d, 3 * d))
        k, v = kv.split(d, dim=-1)
        return self.split_heads(k), self.split_heads(v)

    def project_q(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, H, T, Dh)."""
        d = self.d_model
        return self.split_heads(self.w_qkv.rows(x, 0, d))

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

    def attend_heads(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``attend`` without W_O: the heads' outputs concatenated, (R, Tq, D), and the weights or None."""
        p = self.dropout if self.training else 0.0
        rows, heads, t, d_head = q.shape
        g = rows // k.size(0) if k.size(0) else 1
        if g > 1:
            q = q.view(-1, g, heads, t, d_head).transpose(1, 2).reshape(-1, heads, g * t, d_head)  # (B, H, gTq, Dh)
        out, weights = scaled_dot_product_attention(q, k, v, mask, p, need_weights)
        if g > 1:
            out = out.view(-1, heads, g, t, d_head).transpose(1, 2).reshape(rows, heads, t, d_head)
            if weights is not None:
                weights = weights.view(-1, heads, g, t, k.size(2)).transpose(1, 2).reshape(rows, heads, t, -1)
        return out.transpose(1, 2).reshape(rows, t, self.d_model), weights  # (R, Tq, D)

    def forward(
        self,
        query: Tensor,
        memory: Tensor | None = None,
        mask: Tensor | None = None,
        need_weights: bool = False,
        packing: Packing | None = None,
        memory_packing: Packing | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Self-attention when ``memory`` is None, else attention of ``query`` over ``memory``.

        ``packing`` (self-attention): ``query`` holds only the real positions of a (B, T) batch, packed
        (``transformer.packing``), and so does the output. ``memory_packing``: keys and values are projected
        at the memory's real positions only.

        Shapes: query (B, Tq, D) or packed (N, D), memory (B, Tk, D), mask broadcastable to (B, H, Tq, Tk)
        -> (B, Tq, D) or packed (N, D), weights (B, H, Tq, Tk) or None.
        """
        if packing is not None:
            if memory is not None or need_weights:
                raise ValueError("packed queries are for self-attention without weights")
            q, k, v = self.split_qkv(packing.unpack(self.w_qkv(query)))  # 3 x (B, H, T, Dh)
            heads, _ = self.attend_heads(q, k, v, mask)  # (B, T, D)
            return self.w_o(packing.pack(heads)), None
        if memory is None:
            q, k, v = self.project_qkv(query)
        else:
            q = self.project_q(query)
            k, v = self.project_kv(memory, memory_packing)
        return self.attend(q, k, v, mask, need_weights)
