"""The chunked label-smoothed loss equals F.cross_entropy on the full logits, in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transformer import Transformer, TransformerConfig
from transformer.training.loss import label_smoothed_loss

V, D = 17, 8


def _inputs(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 7, D, dtype=dtype, generator=g, requires_grad=True)
    weight = torch.randn(V, D, dtype=dtype, generator=g, requires_grad=True)
    target = torch.randint(3, V, (3, 7), generator=g)
    target[0, 5:] = 0  # padding
    target[2, 2:] = 0
    return hidden, target, weight


def _reference(hidden, target, weight, epsilon):
    logits = (hidden @ weight.t()).reshape(-1, V)
    return F.cross_entropy(logits, target.reshape(-1), ignore_index=0, label_smoothing=epsilon, reduction="sum")


@pytest.mark.parametrize("chunk_size", [0, 1, 4, 13, 1000])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_equals_cross_entropy_value_and_gradients(chunk_size: int, epsilon: float) -> None:
    hidden, target, weight = _inputs()
    out = label_smoothed_loss(hidden, target, weight, pad_id=0, epsilon=epsilon, chunk_size=chunk_size)
    ref = _reference(hidden, target, weight, epsilon)
    nll = _reference(hidden, target, weight, 0.0)
    assert out.n_tokens == int((target != 0).sum()) == 14
    torch.testing.assert_close(out.loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.nll, nll.detach(), rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(2.5 * out.loss, [hidden, weight])
    ref_grads = torch.autograd.grad(2.5 * ref, [hidden, weight])
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert grads[0][target == 0].abs().max() == 0  # padding positions get no gradient


def test_chunked_equals_unchunked_in_float32() -> None:
    hidden, target, weight = _inputs()
    hidden, weight = hidden.detach().float().requires_grad_(), weight.detach().float().requires_grad_()
    results = []
    for chunk_size in (0, 3):
        out = label_smoothed_loss(hidden, target, weight, 0, 0.1, chunk_size)
        results.append((out.loss.detach(), *torch.autograd.grad(out.loss, [hidden, weight])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_hand_computed_example() -> None:
    # one position, V = 4 uniform logits: -log p = log 4 for every class, whatever the smoothing
    hidden = torch.zeros(1, 1, 2)
    weight = torch.zeros(4, 2)
    out = label_smoothed_loss(hidden, torch.tensor([[3]]), weight, pad_id=0, epsilon=0.1)
    assert out.loss.item() == pytest.approx(torch.log(torch.tensor(4.0)).item())
    # logits (0, 0, 0, big): nll of class 3 ~ 0; smoothing pays eps/V * sum_c -log p_c
    weight = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [30.0, 0.0]])
    out = label_smoothed_loss(torch.tensor([[[1.0, 0.0]]]), torch.tensor([[3]]), weight, pad_id=0, epsilon=0.1)
    expected = 0.9 * 0.0 + 0.1 / 4 * (3 * 30.0 + 0.0)  # log-probs: -30 (x3) and ~0
    assert out.loss.item() == pytest.approx(expected, abs=1e-5)


def test_matches_the_model_projection_end_to_end(tiny_cfg: TransformerConfig, make_tokens) -> None:
    model = Transformer(tiny_cfg)
    src = make_tokens([5, 3], 13)
    tgt = make_tokens([4, 6], 13, start_with_bos=True)
    gold = make_tokens([4, 6], 13)
    hidden = model.decode(tgt, model.encode(src), model.source_mask(src))
    out = label_smoothed_loss(hidden, gold, model.output_weight, 0, 0.1, chunk_size=3)
    grads = torch.autograd.grad(out.loss, list(model.parameters()))
    logits = model(src, tgt)
    ref = F.cross_entropy(logits.reshape(-1, 13), gold.reshape(-1), ignore_index=0, label_smoothing=0.1,
                          reduction="sum")
    ref_grads = torch.autograd.grad(ref, list(model.parameters()))
    torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_without_grad_and_under_bf16_autocast() -> None:
    hidden, target, weight = _inputs()
    hidden, weight = hidden.detach().float(), weight.detach().float()
    with torch.no_grad():
        plain = label_smoothed_loss(hidden, target, weight, 0, 0.1, 4)
    assert not plain.loss.requires_grad
    hidden.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = label_smoothed_loss(hidden, target, weight, 0, 0.1, 4)
    assert mixed.loss.dtype == torch.float32  # softmax and sums stay in float32
    torch.testing.assert_close(mixed.loss, plain.loss, rtol=2e-2, atol=0)
    (grad,) = torch.autograd.grad(mixed.loss, [hidden])
    assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
