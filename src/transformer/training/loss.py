"""Label-smoothed cross-entropy (§5.4) over the pre-softmax projection, computed in chunks of positions.

The (N, V) logits of a whole batch are the largest tensor of training (25k tokens x 37k words is 3.7 GB in
float32). Here they exist one chunk at a time: each chunk is projected, its loss summed and, when a gradient
is needed, its gradient with respect to the hidden states and the output matrix computed right away, so the
backward pass only scales stored gradients and nothing is projected twice.

The loss equals ``F.cross_entropy(project(hidden), target, ignore_index=pad_id, label_smoothing=epsilon,
reduction="sum")``: the target distribution is (1 - epsilon) on the reference plus epsilon / V on every word.

Shapes: N target positions, n positions of one chunk, D d_model, V target vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class LossSums(NamedTuple):
    """Sums over the non-padding target positions; divide by ``n_tokens`` for per-token values."""

    loss: Tensor  # () float32 (float64 for float64 inputs), label-smoothed: what is optimised
    nll: Tensor  # () likewise, -log P(reference): perplexity = exp(nll / n_tokens); no gradient
    n_tokens: int


def label_smoothed_loss(
    hidden: Tensor, target: Tensor, output_weight: Tensor, pad_id: int, epsilon: float, chunk_size: int = 4096
) -> LossSums:
    """Summed label-smoothed cross-entropy of the logits ``hidden @ output_weight.T`` (``Transformer.project``).

    Args:
        hidden: (..., D) decoder output states.
        target: (...) int64 reference tokens; positions holding ``pad_id`` are ignored.
        output_weight: (V, D) the pre-softmax projection, ``model.output_weight``.
        pad_id: padding id of ``target``.
        epsilon: label smoothing, in [0, 1).
        chunk_size: positions projected at once; 0 projects all of them in one go.

    Under autocast the projections run in the autocast dtype, the softmax and the sums in float32.
    """
    d = hidden.size(-1)
    keep = (target != pad_id).reshape(-1)  # padding never reaches the projection
    h = hidden.reshape(-1, d)[keep]  # (N, D)
    y = target.reshape(-1)[keep]  # (N,)
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        compute_dtype = torch.get_autocast_dtype(device_type)
    else:
        compute_dtype = output_weight.dtype
    need_grad = torch.is_grad_enabled() and (h.requires_grad or output_weight.requires_grad)
    chunk = chunk_size if chunk_size > 0 else max(h.size(0), 1)
    loss, nll = _ProjectedCrossEntropy.apply(h, output_weight, y, float(epsilon), chunk, compute_dtype, need_grad)
    return LossSums(loss, nll, h.size(0))


class _ProjectedCrossEntropy(torch.autograd.Function):
    """Loss and gradients of softmax cross-entropy over a chunked projection, in one pass."""

    @staticmethod
    def forward(ctx, h, weight, y, epsilon, chunk, compute_dtype, need_grad):  # type: ignore[override]
        with torch.autocast(h.device.type, enabled=False):  # dtypes are explicit below
            loss, nll, grad_h, grad_w = _chunked_forward(h, weight, y, epsilon, chunk, compute_dtype, need_grad)
        ctx.mark_non_differentiable(nll)
        ctx.save_for_backward(grad_h, grad_w)
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss, _grad_nll):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        if grad_h.numel() == 0 and grad_w.numel() == 0:
            raise RuntimeError("label_smoothed_loss was computed without gradients (no grad mode or no leaf)")
        return grad_h * grad_loss.to(grad_h.dtype), grad_w * grad_loss.to(grad_w.dtype), None, None, None, None, None


def _chunked_forward(
    h: Tensor, weight: Tensor, y: Tensor, epsilon: float, chunk: int, compute_dtype: torch.dtype, need_grad: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n_words = weight.size(0)
    acc = torch.promote_types(compute_dtype, torch.float32)  # softmax and sums: float32 (float64 if given)
    w = weight.to(compute_dtype)  # (V, D)
    loss = torch.zeros((), dtype=acc, device=h.device)
    nll = torch.zeros((), dtype=acc, device=h.device)
    grad_h = torch.empty_like(h) if need_grad else h.new_empty(0)  # (N, D)
    grad_w = torch.zeros(weight.shape, dtype=acc, device=h.device) if need_grad else h.new_empty(0)
    for start in range(0, h.size(0), chunk):
        hc = h[start : start + chunk].to(compute_dtype)  # (n, D)
        yc = y[start : start + chunk, None]  # (n, 1)
        logp = torch.log_softmax((hc @ w.t()).to(acc), dim=-1)  # (n, V)
        nll_c = -logp.gather(1, yc).sum()
        loss += (1.0 - epsilon) * nll_c - (epsilon / n_words) * logp.sum()
        nll += nll_c.detach()
        if need_grad:
            # d loss / d logits = softmax - target distribution ((1 - eps) one-hot + eps / V)
            g = logp.exp_().sub_(epsilon / n_words)  # (n, V), reusing the log-probabilities' memory
            g.scatter_add_(1, yc, g.new_full(yc.shape, -(1.0 - epsilon)))
            g = g.to(compute_dtype)
            grad_h[start : start + chunk] = (g @ w).to(h.dtype)  # (n, D)
            grad_w += (g.t() @ hc).to(acc)  # (V, D)
    return loss, nll, grad_h, grad_w.to(weight.dtype) if need_grad else grad_w
