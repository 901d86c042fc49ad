"""Attention (§3.2): the formula against a float64 reference written here, both code paths, fully
masked rows, and MultiHeadAttention against torch.nn.MultiheadAttention with the same weights.

Shapes: B batch, H heads, Tq queries, Tk keys, Dh head dim, D d_model.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from transformer.attention import MultiHeadAttention, attention, scaled_dot_product_attention
from transformer.masks import causal_mask
from transformer.ops.sdpa import FORMULA_MAX_KEYS_TRAINING


def reference_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """softmax(Q K^T / sqrt(d_k)) V in float64, masked keys removed before the softmax.

    A row with no allowed key gets weights 0 and output 0 (the project's documented choice).
    Shapes: q (B, H, Tq, Dh), k and v (B, H, Tk, Dh), mask broadcastable to (B, H, Tq, Tk).
    """
    q, k, v = q.double(), k.double(), v.double()
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.size(-1))
    if mask is None:
        mask = torch.ones_like(scores, dtype=torch.bool)
    mask = mask.expand_as(scores)
    exp = torch.where(mask, torch.exp(scores - scores.max(dim=-1, keepdim=True).values), 0.0)
    total = exp.sum(dim=-1, keepdim=True)
    weights = torch.where(total > 0, exp / total.clamp_min(1e-300), 0.0)
    return torch.einsum("bhqk,bhkd->bhqd", weights, v), weights


def random_qkv(b: int = 2, h: int = 3, tq: int = 5, tk: int = 7, dh: int = 8) -> tuple[Tensor, Tensor, Tensor]:
    return torch.randn(b, h, tq, dh), torch.randn(b, h, tk, dh), torch.randn(b, h, tk, dh)


def random_mask(b: int, tq: int, tk: int) -> Tensor:
    """(B, 1, Tq, Tk) with about a third of keys blocked, and at least one allowed key per row."""
    mask = torch.rand(b, 1, tq, tk) > 0.33
    mask[..., 0] = True
    return mask


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_the_formula(need_weights: bool, masked: bool) -> None:
    q, k, v = random_qkv()
    mask = random_mask(2, 5, 7) if masked else None
    out, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
    ref_out, ref_w = reference_attention(q, k, v, mask)
    assert out.shape == (2, 3, 5, 8) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref_out, atol=1e-5, rtol=1e-5)
    if need_weights:
        assert weights is not None and weights.shape == (2, 3, 5, 7)
        torch.testing.assert_close(weights.double(), ref_w, atol=1e-6, rtol=1e-5)
    else:
        assert weights is None


def test_scale_is_inverse_sqrt_of_head_dim() -> None:
    """One query, two keys: the weight of key 0 is sigmoid((s0 - s1) / sqrt(d_k)), computed by hand."""
    dh = 16
    q = torch.zeros(1, 1, 1, dh)
    q[..., 0] = 2.0
    k = torch.zeros(1, 1, 2, dh)
    k[..., 0, 0] = 3.0  # score 6 before scaling, 0 for key 1
    v = torch.eye(2, dh)[None, None]
    _, weights = scaled_dot_product_attention(q, k, v, need_weights=True)
    expected = 1.0 / (1.0 + math.exp(-6.0 / math.sqrt(dh)))
    assert weights is not None
    assert weights[0, 0, 0, 0].item() == pytest.approx(expected, rel=1e-6)


def test_weights_rows_sum_to_one_and_masked_keys_get_exactly_zero() -> None:
    q, k, v = random_qkv(b=3, tq=6, tk=9)
    mask = random_mask(3, 6, 9)
    _, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    assert weights is not None
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(3, 3, 6), atol=1e-6, rtol=0)
    blocked = (~mask).expand_as(weights)
    assert bool((weights[blocked] == 0.0).all())
    assert bool((weights[~blocked] > 0.0).all())


def test_masked_keys_do_not_influence_output() -> None:
    q, k, v = random_qkv()
    mask = random_mask(2, 5, 7)
    mask[..., 3] = False  # key 3 is blocked for every query
    k2, v2 = k.clone(), v.clone()
    k2[..., 3, :] += 100.0 * torch.randn_like(k2[..., 3, :])
    v2[..., 3, :] += 100.0 * torch.randn_like(v2[..., 3, :])
    for need_weights in (False, True):
        out1, _ = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
        out2, _ = scaled_dot_product_attention(q, k2, v2, mask, need_weights=need_weights)
        torch.testing.assert_close(out1, out2, atol=1e-6, rtol=0)


@pytest.mark.parametrize("masked", [False, True])
def test_fused_kernel_and_formula_agree(masked: bool) -> None:
    q, k, v = random_qkv(b=4, h=2, tq=11, tk=13, dh=16)
    mask = random_mask(4, 11, 13) if masked else None
    fused, _ = scaled_dot_product_attention(q, k, v, mask, need_weights=False)
    explicit, _ = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_single_query_path_matches_the_formula_and_has_gradients(masked: bool) -> None:
    # one query per row: the decoding step, which takes the two-matmul formula on the CPU
    q, k, v = (t.requires_grad_() for t in random_qkv(b=3, h=2, tq=1, tk=9, dh=16))
    mask = random_mask(3, 1, 9) if masked else None
    if masked:
        mask[2] = False  # a row with no allowed key gives zeros
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert weights is None
    torch.testing.assert_close(out.detach().double(), reference_attention(q.detach(), k.detach(), v.detach(), mask)[0],
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, attention(q, k, v, mask)[0])
    (out * torch.randn_like(out)).sum().backward()
    for name, t in (("q", q), ("k", k), ("v", v)):
        assert t.grad is not None and bool(t.grad.isfinite().all()), name
    fused = torch.nn.functional.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), attn_mask=mask)
    rows = slice(0, 2) if masked else slice(None)
    torch.testing.assert_close(out.detach()[rows], fused[rows], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("tk", [7, FORMULA_MAX_KEYS_TRAINING, FORMULA_MAX_KEYS_TRAINING + 1])
@pytest.mark.parametrize("causal", [False, True])
def test_training_path_matches_the_fused_kernel_values_and_gradients(tk: int, causal: bool) -> None:
    # With gradients on the CPU, short keys take the formula (``attention``) and longer ones the fused kernel: either
    # way the output and the gradients of q, k and v are those of torch's kernel (our oracle here).
    tq = tk if causal else 5
    q, k, v = random_qkv(b=3, h=2, tq=tq, tk=tk, dh=8)
    mask = causal_mask(tk) & random_mask(3, 1, tk) if causal else random_mask(3, tq, tk)
    mask[..., 0] = True  # every row has a key, as in training, so the kernels agree everywhere
    grad = torch.randn(3, 2, tq, 8)
    results = []
    for ours in (True, False):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        if ours:
            out, _ = scaled_dot_product_attention(*leaves, mask)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(*leaves, attn_mask=mask)
        out.backward(grad)
        results.append([out.detach()] + [t.grad for t in leaves])
    for name, a, b in zip(("out", "dq", "dk", "dv"), *results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_attention_zeroes_empty_rows_and_drops_weights() -> None:
    q, k, v = (t.requires_grad_() for t in random_qkv(b=2, h=2, tq=4, tk=6, dh=8))
    mask = torch.ones(2, 1, 4, 6, dtype=torch.bool)
    mask[1, :, 2] = False  # query 2 of sentence 1 may see nothing
    out, weights = attention(q, k, v, mask, need_weights=True)
    assert bool((out[1, :, 2] == 0).all()) and bool((out[0] != 0).all())
    assert weights is not None and bool((weights[1, :, 2] == 0).all())
    out.sum().backward()
    assert all(bool(t.grad.isfinite().all()) for t in (q, k, v))
    # dropout on the weights: rows of dropped weights no longer sum to one, in expectation they do; the weights
    # returned are those before dropout
    ones = torch.ones(1, 1, 2000, 1)
    torch.manual_seed(0)
    dropped, weights = attention(torch.zeros(1, 1, 2000, 4), torch.zeros(1, 1, 8, 4), torch.ones(1, 1, 8, 1),
                                 dropout_p=0.5, need_weights=True)
    assert not torch.equal(dropped, ones)
    assert abs(float(dropped.mean()) - 1.0) < 0.05
    assert weights is not None and torch.equal(weights, torch.full((1, 1, 2000, 8), 1 / 8))


def test_paths_agree_with_a_causal_mask() -> None:
    q, k, v = random_qkv(tq=6, tk=6)
    mask = causal_mask(6)
    fused, _ = scaled_dot_product_attention(q, k, v, mask)
    explicit, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)
    assert weights is not None
    assert bool((weights.triu(diagonal=1) == 0).all())


@pytest.mark.parametrize("need_weights", [False, True])
def test_fully_masked_row_gives_zeros_and_finite_gradients(need_weights: bool) -> None:
    q, k, v = (t.requires_grad_() for t in random_qkv(b=2, tq=4, tk=5))
    mask = random_mask(2, 4, 5)
    mask[0, :, 2, :] = False  # query 2 of sentence 0 may attend to nothing
    mask[1] = False  # every query of sentence 1: a sentence that is all padding
    out, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=need_weights)
    assert not bool(out.isnan().any())
    assert bool((out[0, :, 2] == 0).all()) and bool((out[1] == 0).all())
    ref_out, _ = reference_attention(q.detach(), k.detach(), v.detach(), mask)
    torch.testing.assert_close(out.detach().double(), ref_out, atol=1e-5, rtol=1e-5)
    if need_weights:
        assert weights is not None
        assert bool((weights[0, :, 2] == 0).all()) and bool((weights[1] == 0).all())
    (out * torch.randn_like(out)).sum().backward()
    for name, t in (("q", q), ("k", k), ("v", v)):
        assert t.grad is not None and bool(t.grad.isfinite().all()), name
    assert bool((q.grad[0, :, 2] == 0).all())  # an output that is constantly 0 has no gradient


def test_mask_broadcasts_over_heads_and_queries() -> None:
    q, k, v = random_qkv(b=2, tq=3, tk=4)
    src_like = torch.tensor([[True, True, False, False], [True, True, True, True]])[:, None, None, :]  # (B,1,1,Tk)
    out, _ = scaled_dot_product_attention(q, k, v, src_like)
    ref, _ = reference_attention(q, k, v, src_like)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_dropout_only_when_asked() -> None:
    q, k, v = random_qkv()
    out0, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    out1, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert not torch.allclose(out0, out1)


# -- MultiHeadAttention against torch.nn.MultiheadAttention -----------------------------------------


def paired_attention(d_model: int = 16, n_heads: int = 4) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    """Ours and PyTorch's with the same weights; random biases so that they are compared too."""
    ours = MultiHeadAttention(d_model, n_heads).eval()
    theirs = nn.MultiheadAttention(d_model, n_heads, dropout=0.0, bias=True, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
        ours.w_qkv.weight.copy_(theirs.in_proj_weight)  # rows: W_Q, W_K, W_V stacked
        ours.w_qkv.bias.copy_(theirs.in_proj_bias)
        ours.w_o.weight.copy_(theirs.out_proj.weight)
        ours.w_o.bias.copy_(theirs.out_proj.bias)
    return ours, theirs


def test_self_attention_matches_nn_multihead_attention_with_padding() -> None:
    ours, theirs = paired_attention()
    x = torch.randn(3, 6, 16)
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        out, w = ours(x, mask=valid[:, None, None, :], need_weights=True)
        out_fused, _ = ours(x, mask=valid[:, None, None, :])
        # nn.MultiheadAttention's polarity is the opposite: True = blocked.
        ref, ref_w = theirs(x, x, x, key_padding_mask=~valid, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_fused, ref, atol=1e-5, rtol=1e-5)
    assert w is not None
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)


def test_causal_self_attention_matches_nn_multihead_attention() -> None:
    ours, theirs = paired_attention()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        out, _ = ours(x, mask=causal_mask(5))
        blocked = ~causal_mask(5)[0, 0]  # (T, T), True = not allowed
        ref, _ = theirs(x, x, x, attn_mask=blocked, need_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_cross_attention_matches_nn_multihead_attention() -> None:
    ours, theirs = paired_attention(d_model=24, n_heads=3)
    query, memory = torch.randn(2, 4, 24), torch.randn(2, 7, 24)
    valid = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        out, w = ours(query, memory, mask=valid[:, None, None, :], need_weights=True)
        ref, ref_w = theirs(query, memory, memory, key_padding_mask=~valid, average_attn_weights=False)
        k, v = ours.project_kv(memory)
        out_split, _ = ours.attend(ours.project_q(query), k, v, valid[:, None, None, :])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_split, ref, atol=1e-5, rtol=1e-5)
    assert w is not None
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)


def test_head_count_must_divide_d_model() -> None:
    with pytest.raises(ValueError, match="n_heads"):
        MultiHeadAttention(10, 3)
