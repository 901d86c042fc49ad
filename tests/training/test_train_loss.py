"""The chunked label-smoothed loss equals F.cross_entropy on the full logits, in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transformer import Transformer, TransformerConfig
from transformer.training.loss import _fused_chunk, label_smoothed_loss

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


# -- the fused chunk (compile_loss) --------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_fused_chunk_formula_equals_cross_entropy(epsilon: float) -> None:
    """The math of the compiled kernel, checked in eager float64 (fast, independent of the compiler)."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(9, V, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randint(0, V, (9, 1), generator=g)
    loss, nll, grad = _fused_chunk(logits.detach(), y, epsilon)
    ref = F.cross_entropy(logits, y[:, 0], label_smoothing=epsilon, reduction="sum")
    (ref_grad,) = torch.autograd.grad(ref, [logits])
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(nll, F.cross_entropy(logits, y[:, 0], reduction="sum").detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [0, 4])
def test_compiled_equals_cross_entropy_value_and_gradients(chunk_size: int) -> None:
    hidden, target, weight = _inputs()
    out = label_smoothed_loss(hidden, target, weight, pad_id=0, epsilon=0.1, chunk_size=chunk_size, compiled=True)
    ref = _reference(hidden, target, weight, 0.1)
    torch.testing.assert_close(out.loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.nll, _reference(hidden, target, weight, 0.0).detach(), rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(out.loss, [hidden, weight]), torch.autograd.grad(ref, [hidden, weight])):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_compiled_equals_eager_under_bf16_autocast() -> None:
    """What training runs: bf16 logits, float32 sums; both paths see the same bf16 logits, so they agree to
    float32 rounding of the sums and bf16 rounding of the logits' gradient."""
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(40, 16, generator=g, requires_grad=True)
    weight = torch.randn(300, 16, generator=g, requires_grad=True)
    target = torch.randint(1, 300, (40,), generator=g)
    results = []
    for compiled in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = label_smoothed_loss(hidden, target, weight, 0, 0.1, chunk_size=16, compiled=compiled)
        results.append((out.loss.detach(), out.nll, *torch.autograd.grad(out.loss, [hidden, weight])))
    (loss, nll, gh, gw), (closs, cnll, cgh, cgw) = results
    assert closs.dtype == torch.float32 and cgh.dtype == torch.float32 and cgw.dtype == torch.float32
    torch.testing.assert_close(closs, loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(cnll, nll, rtol=1e-5, atol=0)
    torch.testing.assert_close(cgh, gh, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(cgw, gw, rtol=2e-2, atol=2e-2)


def test_compiled_without_grad_is_the_eager_loss() -> None:
    hidden, target, weight = _inputs()
    with torch.no_grad():
        out = label_smoothed_loss(hidden, target, weight, 0, 0.1, 4, compiled=True)
        plain = label_smoothed_loss(hidden, target, weight, 0, 0.1, 4)
    assert torch.equal(out.loss, plain.loss) and torch.equal(out.nll, plain.nll)


@pytest.mark.parametrize("compiled", [False, True])
def test_a_fixed_logits_bias_is_part_of_the_loss_and_gets_no_gradient(compiled: bool) -> None:
    """``output_bias`` (Marian's final_logits_bias): the loss of logits hidden W^T + b; b itself is not trained."""
    hidden, target, weight = _inputs()
    bias = torch.randn(V, dtype=hidden.dtype, generator=torch.Generator().manual_seed(2))
    out = label_smoothed_loss(hidden, target, weight, pad_id=0, epsilon=0.1, chunk_size=5, compiled=compiled,
                              output_bias=bias)
    logits = (hidden @ weight.t() + bias).reshape(-1, V)
    ref = F.cross_entropy(logits, target.reshape(-1), ignore_index=0, label_smoothing=0.1, reduction="sum")
    torch.testing.assert_close(out.loss, ref, rtol=1e-6 if compiled else 1e-12, atol=1e-6 if compiled else 1e-12)
    grads = torch.autograd.grad(out.loss, [hidden, weight])
    expected = torch.autograd.grad(ref, [hidden, weight])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-6 if compiled else 1e-10, atol=1e-6 if compiled else 1e-10)
    assert not bias.requires_grad
