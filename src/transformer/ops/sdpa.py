"""Which kernel computes attention: PyTorch's fused ``scaled_dot_product_attention``, or the formula in two
batched matmuls (``transformer.attention.attention``), whichever is faster for the shapes at hand.

On the CPU the fused kernel's blocking is built for long sequences: up to ``FORMULA_MAX_QUERIES`` queries per
row (a decoding step has one query, or the g beams of a sentence over its shared cross-attention keys), and
in training (forward + backward) up to ``FORMULA_MAX_KEYS_TRAINING`` keys, the formula was measured faster
(docs/performance.md). Elsewhere, and on other devices, the fused kernel runs.

Shapes: B batch, H heads, Tq query length, Tk key length, Dh head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FORMULA_MAX_QUERIES = 16
FORMULA_MAX_KEYS_TRAINING = 64


def formula_is_faster(q: Tensor, k: Tensor) -> bool:
    """Whether the two-matmul formula beats the fused kernel for queries ``q`` over keys ``k`` here."""
    if q.device.type != "cpu":
        return False
    if q.size(-2) <= FORMULA_MAX_QUERIES:
        return True
    training = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad)
    return training and k.size(-2) <= FORMULA_MAX_KEYS_TRAINING


def _fused_zeroes_empty_rows() -> bool:
    """Whether this torch's fused kernel already returns zeros for fully masked rows."""
    q = torch.zeros(1, 1, 1, 2)
    mask = torch.zeros(1, 1, 1, 1, dtype=torch.bool)
    out = F.scaled_dot_product_attention(q, q[..., :1, :], q[..., :1, :], attn_mask=mask)
    return bool(torch.all(out == 0))


_FUSED_ZEROES_EMPTY_ROWS = _fused_zeroes_empty_rows()


def fused_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float,
                    scale: float | None = None) -> Tensor:
    """``F.scaled_dot_product_attention`` (mask: bool, True = may attend; ``scale``: None is 1 / sqrt(d_k)), with
    zeros for fully masked rows.

    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh), mask broadcastable to (B, H, Tq, Tk) -> (B, H, Tq, Dh).
    """
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    if mask is not None and not _FUSED_ZEROES_EMPTY_ROWS:
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out
