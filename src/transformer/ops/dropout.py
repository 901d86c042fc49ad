"""Dropout (§5.4) with a cheaper random mask on the CPU.

Dropout(x)_i = x_i * m_i / (1 - p), m_i ~ Bernoulli(1 - p), in training; the identity in eval.

PyTorch's CPU dropout draws one Mersenne-Twister number per element, serially (``bernoulli_``), while the
matmuls around it run in parallel (its share of a training step: docs/performance.md). Here one 64-bit draw
gives four 16-bit uniforms, a quarter of the draws, so p is rounded to a multiple of 2^-16 (error <= 7.7e-6)
and the scale uses the rounded p: E[Dropout(x)] = x exactly. Other devices use torch's fused kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_LEVELS = 1 << 16  # values of a 16-bit uniform


def rounded_p(p: float) -> float:
    """The drop probability the CPU mask realises: p rounded to a multiple of 2^-16."""
    return round(p * _LEVELS) / _LEVELS


def drop_mask(shape: torch.Size, p: float, device: torch.device | str = "cpu") -> Tensor:
    """Bool mask, True = dropped, each element with probability ``rounded_p(p)``, independently.

    Shapes: -> ``shape``.
    """
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), 2**63 - 1)  # all 64 bits random (plain random_() leaves the sign bit 0)
    uniform = words.view(torch.int16)[:n].view(shape)  # uniform on [-32768, 32767]
    return uniform < round(p * _LEVELS) - _LEVELS // 2


class _ApplyMask(torch.autograd.Function):
    """y = x * scale where not dropped, 0 where dropped; dy/dx is the same mask and scale."""

    @staticmethod
    def forward(ctx, x: Tensor, dropped: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(dropped)
        ctx.scale = scale
        return x.masked_fill(dropped, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (dropped,) = ctx.saved_tensors
        return grad.masked_fill(dropped, 0.0).mul_(ctx.scale), None, None


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout; on the CPU with the quarter-draw mask above, elsewhere ``F.dropout``."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    q = rounded_p(p)
    if q == 0.0:
        return x
    return _ApplyMask.apply(x, drop_mask(x.shape, p, x.device), 1.0 / (1.0 - q))


class _ReluApplyMask(torch.autograd.Function):
    """y = relu(x) * scale where not dropped, 0 where dropped; backward needs only y: dy/dx = scale where y > 0."""

    @staticmethod
    def forward(ctx, x: Tensor, dropped: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        y = x.masked_fill(dropped, 0.0).relu_().mul_(scale)
        ctx.save_for_backward(y)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, y, 0.0).mul_(ctx.scale), None, None


def relu_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """dropout(relu(x), p) in one step: on the CPU in training, backward keeps only the output.

    The output is what the next linear layer keeps anyway, so the feed-forward network's widest activation
    (d_ff) is held once, where relu and dropout apart also keep relu's output and the drop mask: 4 bytes an
    element instead of 9, and two fewer passes over it.
    """
    q = rounded_p(p)
    if not training or x.device.type != "cpu" or q == 0.0:
        return dropout(F.relu(x), p, training)
    return _ReluApplyMask.apply(x, drop_mask(x.shape, p, x.device), 1.0 / (1.0 - q))


class Dropout(nn.Module):
    """``nn.Dropout`` with the faster CPU mask; ``p`` as in ``nn.Dropout``."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability p={p} must be in [0, 1)")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
