"""The learning rate of §5.3: lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)."""

from __future__ import annotations

import math

import pytest
import torch

from transformer.training.schedule import cooldown, noam_lr, set_lr


def test_values_at_step_1_warmup_and_twice_warmup() -> None:
    d, w = 512, 4000
    assert noam_lr(1, d, w) == pytest.approx(512**-0.5 * 4000**-1.5)  # 1.747e-7
    assert noam_lr(w, d, w) == pytest.approx(512**-0.5 * 4000**-0.5)  # the peak, 7.0e-4
    assert noam_lr(w, d, w) == pytest.approx(6.987712429686844e-4)
    assert noam_lr(2 * w, d, w) == pytest.approx(512**-0.5 * 8000**-0.5)  # peak / sqrt(2)
    assert noam_lr(2 * w, d, w) == pytest.approx(noam_lr(w, d, w) / math.sqrt(2))


def test_linear_warmup_then_inverse_sqrt_decay_and_scale() -> None:
    d, w = 256, 100
    assert noam_lr(50, d, w) == pytest.approx(50 * noam_lr(1, d, w))  # linear in step during warmup
    assert noam_lr(400, d, w) == pytest.approx(noam_lr(100, d, w) / 2)  # 1/sqrt(step) after it
    peak = max(range(1, 1000), key=lambda s: noam_lr(s, d, w))
    assert peak == w
    assert noam_lr(123, d, w, scale=2.5) == pytest.approx(2.5 * noam_lr(123, d, w))


def test_step_zero_is_rejected() -> None:
    with pytest.raises(ValueError, match="step=0"):
        noam_lr(0, 512)


def test_set_lr_sets_every_group() -> None:
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b]}], lr=1.0)
    set_lr(opt, 0.125)
    assert [g["lr"] for g in opt.param_groups] == [0.125, 0.125]


def test_cooldown_is_one_then_a_straight_line_to_the_last_step() -> None:
    assert [cooldown(s, 10, 0) for s in (1, 5, 10)] == [1.0, 1.0, 1.0]  # no cooldown
    assert [cooldown(s, 10, 4) for s in (1, 6, 7, 8, 9, 10)] == pytest.approx([1, 1, 1, 0.75, 0.5, 0.25])
    assert cooldown(11, 10, 4) == 0.0  # past max_steps (never trained)
    assert cooldown(1, 10, 10) == 1.0 and cooldown(10, 10, 10) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="counts optimizer updates from 1"):
        cooldown(0, 10, 4)
