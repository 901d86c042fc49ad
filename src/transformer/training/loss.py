"""Label-smoothed cross-entropy (§5.4) over the pre-softmax projection, computed in chunks of positions.

The (N, V) logits of a whole batch are the largest tensor of training (25k tokens x 37k words is 3.7 GB in
float32). Here they exist one chunk at a time: each chunk is projected, its loss summed and, when a gradient
is needed, its gradient with respect to the hidden states and the output matrix computed right away, so the
backward pass only scales stored gradients and nothing is projected twice.

The loss equals ``F.cross_entropy(project(hidden), target, ignore_index=pad_id, label_smoothing=epsilon,
reduction="sum")``: the target distribution is (1 - epsilon) on the reference plus epsilon / V on every word.

With ``compiled=True`` the softmax, the sums and the gradient of a chunk are one ``torch.compile``d function
(``_fused_chunk``): a few passes over the (n, V) logits instead of about ten, which pays under bf16 autocast
(dtype copies saved) and not in float32 (docs/performance.md). It needs a C++ compiler (torch inductor) and
compiles once; the loss and gradients are the same to rounding.

Shapes: N target positions, n positions of one chunk, D d_model, V target vocabulary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor


class LossSums(NamedTuple):
    """Sums over the non-padding target positions; divide by ``n_tokens`` for per-token values."""

    loss: Tensor  # () float32 (float64 for float64 inputs), label-smoothed: what is optimised
    nll: Tensor  # () likewise, -log P(reference): perplexity = exp(nll / n_tokens); no gradient
    n_tokens: int


def label_smoothed_loss(
    hidden: Tensor, target: Tensor, output_weight: Tensor, pad_id: int, epsilon: float, chunk_size: int = 4096,
    compiled: bool = False, output_bias: Tensor | None = None,
) -> LossSums:
    """Summed label-smoothed cross-entropy of the logits ``hidden @ output_weight.T + output_bias``
    (``Transformer.project``).

    Args:
        hidden: (..., D) decoder output states.
        target: (...) int64 reference tokens; positions holding ``pad_id`` are ignored.
        output_weight: (V, D) the pre-softmax projection, ``model.output_weight``.
        pad_id: padding id of ``target``.
        epsilon: label smoothing, in [0, 1).
        chunk_size: positions projected at once; 0 projects all of them in one go.
        compiled: when a gradient is needed, compute each chunk's softmax, sums and gradient with the
            ``torch.compile``d ``_fused_chunk`` (faster; same values to rounding).
        output_bias: (V,) a fixed bias on the logits, ``model.output_bias`` (not trained: no gradient), or None.

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
    fused = _compiled_fused_chunk() if compiled and need_grad else None
    loss, nll = _ProjectedCrossEntropy.apply(h, output_weight, y, float(epsilon), chunk, compute_dtype, need_grad,
                                             fused, output_bias)
    return LossSums(loss, nll, h.size(0))


class _ProjectedCrossEntropy(torch.autograd.Function):
    """Loss and gradients of softmax cross-entropy over a chunked projection, in one pass."""

    @staticmethod
    def forward(ctx, h, weight, y, epsilon, chunk, compute_dtype, need_grad, fused, bias):  # type: ignore[override]
        with torch.autocast(h.device.type, enabled=False):  # dtypes are explicit below
            loss, nll, grad_h, grad_w = _chunked_forward(h, weight, y, epsilon, chunk, compute_dtype, need_grad,
                                                         fused, bias)
        ctx.mark_non_differentiable(nll)
        ctx.save_for_backward(grad_h, grad_w)
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss, _grad_nll):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        if grad_h.numel() == 0 and grad_w.numel() == 0:
            raise RuntimeError("label_smoothed_loss was computed without gradients (no grad mode or no leaf)")
        grads = grad_h * grad_loss.to(grad_h.dtype), grad_w * grad_loss.to(grad_w.dtype)
        return *grads, None, None, None, None, None, None, None


def _chunked_forward(
    h: Tensor, weight: Tensor, y: Tensor, epsilon: float, chunk: int, compute_dtype: torch.dtype, need_grad: bool,
    fused: Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor, Tensor]] | None = None,
    bias: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n_words = weight.size(0)
    acc = torch.promote_types(compute_dtype, torch.float32)  # softmax and sums: float32 (float64 if given)
    w = weight.to(compute_dtype)  # (V, D)
    b = None if bias is None else bias.to(compute_dtype)  # (V,)
    loss = torch.zeros((), dtype=acc, device=h.device)
    nll = torch.zeros((), dtype=acc, device=h.device)
    grad_h = torch.empty_like(h) if need_grad else h.new_empty(0)  # (N, D)
    grad_w = torch.zeros(weight.shape, dtype=acc, device=h.device) if need_grad else h.new_empty(0)
    for start in range(0, h.size(0), chunk):
        hc = h[start : start + chunk].to(compute_dtype)  # (n, D)
        yc = y[start : start + chunk, None]  # (n, 1)
        if fused is not None:  # the (n, V) logits are passed unnamed so that the callee can free them
            loss_c, nll_c, g = fused(_logits(hc, w, b), yc, epsilon)
        else:
            loss_c, nll_c, g = _eager_chunk(_logits(hc, w, b), yc, epsilon, n_words, acc, need_grad)
        loss += loss_c
        nll += nll_c.detach()
        if need_grad:  # g: (n, V) d loss / d logits, in compute_dtype
            grad_h[start : start + chunk] = (g @ w).to(h.dtype)  # (n, D)
            grad_w += (g.t() @ hc).to(acc)  # (V, D)
    return loss, nll, grad_h, grad_w.to(weight.dtype) if need_grad else grad_w


def _logits(h: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """(n, D), (V, D), (V,) or None -> (n, V): h W^T (+ b)."""
    return h @ w.t() if b is None else torch.addmm(b, h, w.t())


def _eager_chunk(logits: Tensor, y: Tensor, epsilon: float, n_words: int, acc: torch.dtype,
                 need_grad: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """``_fused_chunk``'s results in eager steps, in place where possible (the gradient only if ``need_grad``)."""
    logp = torch.log_softmax(logits.to(acc), dim=-1)  # (n, V)
    dtype = logits.dtype
    del logits  # one (n, V) tensor fewer alive below
    nll = -logp.gather(1, y).sum()
    loss = (1.0 - epsilon) * nll - (epsilon / n_words) * logp.sum()
    if not need_grad:
        return loss, nll, None
    # d loss / d logits = softmax - target distribution ((1 - eps) one-hot + eps / V)
    g = logp.exp_().sub_(epsilon / n_words)  # (n, V), reusing the log-probabilities' memory
    g.scatter_add_(1, y, g.new_full(y.shape, -(1.0 - epsilon)))
    return loss, nll, g.to(dtype)


def _fused_chunk(logits: Tensor, y: Tensor, epsilon: float) -> tuple[Tensor, Tensor, Tensor]:
    """(n, V) logits, (n, 1) targets -> (summed loss, summed nll, d loss / d logits in the logits' dtype).

    With lse = logsumexp_v x_v: nll = lse - x_y; loss = (1 - eps) nll + eps (lse - mean_v x_v);
    d loss / d x = softmax(x) - (1 - eps) onehot(y) - eps / V. Written for ``torch.compile``, which fuses it
    into a few passes over the logits (in eager it is slower than ``_eager_chunk``'s in-place steps).
    """
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))  # (n, V)
    lse = torch.logsumexp(x, dim=1, keepdim=True)  # (n, 1)
    nll = lse - x.gather(1, y)  # (n, 1)
    smooth = lse - x.mean(dim=1, keepdim=True)  # (n, 1): -mean_v log p_v
    loss = ((1.0 - epsilon) * nll + epsilon * smooth).sum()
    hit = torch.arange(x.size(1), device=x.device) == y  # (n, V)
    grad = (x - lse).exp() - epsilon / x.size(1) - hit.to(x.dtype) * (1.0 - epsilon)
    return loss, nll.sum().detach(), grad.to(logits.dtype)


@functools.cache
def _compiled_fused_chunk() -> Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor, Tensor]]:
    """``_fused_chunk`` under ``torch.compile``, made once per process; dynamic: every chunk length, one graph."""
    return torch.compile(_fused_chunk, dynamic=True)
