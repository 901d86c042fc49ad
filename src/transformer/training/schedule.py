"""The learning-rate schedule of §5.3 ("Noam"): linear warmup, then decay with the inverse square root of the step."""

from __future__ import annotations

import torch


def noam_lr(step: int, d_model: int, warmup: int = 4000, scale: float = 1.0) -> float:
    """lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), for steps counted from 1 (§5.3, eq. 3).

    It peaks at ``step == warmup``, where the two terms are equal.
    """
    if step < 1:
        raise ValueError(f"step={step} must be >= 1: the schedule counts optimizer updates from 1")
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def cooldown(step: int, max_steps: int, decay_steps: int) -> float:
    """The factor min(1, (max_steps + 1 - step) / decay_steps): 1 until the last ``decay_steps`` updates, then a
    straight line down to 1/decay_steps at ``step == max_steps`` (0 ``decay_steps``: always 1).

    Ending a run at a small learning rate removes most of the noise the last updates leave in the weights,
    what checkpoint averaging does after the fact.
    """
    if decay_steps == 0:
        return 1.0
    if step < 1:
        raise ValueError(f"step={step} must be >= 1: the schedule counts optimizer updates from 1")
    return min(1.0, max(0.0, (max_steps + 1 - step) / decay_steps))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Use ``lr`` for every parameter group's next update."""
    for group in optimizer.param_groups:
        group["lr"] = lr
