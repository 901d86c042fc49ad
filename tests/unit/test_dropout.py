"""The CPU dropout: its drop rate, scale, gradient, independence of the four 16-bit lanes, determinism; the
fused relu + dropout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from transformer.feed_forward import PositionwiseFeedForward
from transformer.ops.dropout import Dropout, drop_mask, dropout, relu_dropout, rounded_p

N = 1 << 20  # elements per statistical check; 4.5 standard deviations below


def within(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4.5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_drop_rate_is_p_and_kept_values_are_scaled(p: float) -> None:
    torch.manual_seed(0)
    x = torch.rand(N) + 0.5  # no zeros, so dropped elements are exactly the zeros of the output
    y = dropout(x, p)
    dropped = y == 0
    assert within(int(dropped.sum()), N, p)
    assert torch.allclose(y[~dropped], x[~dropped] / (1 - rounded_p(p)), rtol=1e-6, atol=0)


@pytest.mark.parametrize("lane", range(4))
def test_each_16_bit_lane_drops_at_rate_p(lane: int) -> None:
    # every fourth element comes from the same 16 bits of a 64-bit draw; torch's plain random_() leaves
    # the top bit 0, which would make lane 3 never (p < 0.5) or always (p > 0.5) drop
    torch.manual_seed(1)
    for p in (0.1, 0.7):
        mask = drop_mask(torch.Size([N]), p)
        assert within(int(mask[lane::4].sum()), N // 4, p), (lane, p)


def test_neighbouring_elements_are_independent() -> None:
    torch.manual_seed(2)
    p = 0.5
    m = drop_mask(torch.Size([N]), p)
    both = int((m[:-1] & m[1:]).sum())  # pairs within and across 64-bit words
    assert within(both, N - 1, p * p)


def test_expectation_is_the_input() -> None:
    torch.manual_seed(3)
    x = torch.randn(64)
    mean = torch.stack([dropout(x, 0.3) for _ in range(4000)]).mean(0)
    # each mean of 4000 scaled Bernoullis has sd |x| * sqrt(p / (1 - p) / 4000) ~ 0.0103 |x|
    assert torch.all((mean - x).abs() <= 5 * 0.0103 * x.abs() + 1e-6)


def test_gradient_is_the_same_mask_and_scale() -> None:
    torch.manual_seed(4)
    x = (torch.rand(3, 5, 7, dtype=torch.float64) + 0.5).requires_grad_()
    y = dropout(x, 0.25)
    weights = torch.randn_like(y)
    (y * weights).sum().backward()
    kept = (y != 0).double()
    assert torch.allclose(x.grad, weights * kept / (1 - 0.25), rtol=1e-15, atol=0)

    def same_mask_every_call(t: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(5)
        return dropout(t, 0.25)

    assert torch.autograd.gradcheck(same_mask_every_call, (x.detach().requires_grad_(),))


def test_eval_zero_p_and_shapes() -> None:
    x = torch.randn(2, 3, 4)
    layer = Dropout(0.4).eval()
    assert layer(x) is x and dropout(x, 0.0) is x and dropout(x, 0.4, training=False) is x
    layer.train()
    assert layer(x).shape == x.shape and layer(torch.randn(0, 4)).shape == (0, 4)
    assert dropout(x, 1e-6) is x  # rounds to p = 0
    assert "p=0.4" in repr(layer)
    with pytest.raises(ValueError, match="p=1.0"):
        Dropout(1.0)


def test_same_seed_same_mask() -> None:
    torch.manual_seed(6)
    a = drop_mask(torch.Size([5, 999]), 0.2)
    torch.manual_seed(6)
    assert torch.equal(a, drop_mask(torch.Size([5, 999]), 0.2))


def test_rounded_p() -> None:
    assert rounded_p(0.5) == 0.5 and rounded_p(0.1) == 6554 / 65536
    assert all(abs(rounded_p(p) - p) <= 0.5 / 65536 for p in (0.1, 0.2, 0.3, 1 / 3, 0.999))


def test_relu_dropout_is_dropout_of_relu_forward_and_backward() -> None:
    x = torch.randn(4, 9, 33, dtype=torch.float64)
    x[0, 0, :3] = 0.0  # relu'(0) = 0, as torch has it
    grads = []
    for fused in (True, False):
        xi = x.clone().requires_grad_()
        torch.manual_seed(7)
        y = relu_dropout(xi, 0.3) if fused else dropout(F.relu(xi), 0.3)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        grads.append((y.detach(), xi.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    assert relu_dropout(x, 0.3, training=False).equal(F.relu(x)) and relu_dropout(x, 0.0).equal(F.relu(x))


def _saved_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for backward while ``module(x)`` runs."""
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(kept.values())


def test_the_fused_feed_forward_keeps_only_the_output_of_relu_and_dropout() -> None:
    torch.manual_seed(0)
    d, f, n = 16, 64, 50
    x = torch.randn(n, d, requires_grad=True)
    relu_ffn, gelu_ffn = PositionwiseFeedForward(d, f, "relu", 0.1), PositionwiseFeedForward(d, f, "gelu", 0.1)
    # kept: x, w_1, w_2 (4 bytes each) and, per hidden element, the output, which w_2 needs anyway (4); gelu
    # (as relu without the fusion) keeps its input (4) and the dropout its mask (1) as well
    assert _saved_bytes(relu_ffn, x) == 4 * (n * d + 2 * d * f) + n * f * 4
    assert _saved_bytes(gelu_ffn, x) == 4 * (n * d + 2 * d * f) + n * f * 9
