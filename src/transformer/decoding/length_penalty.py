"""GNMT's length penalty (Wu et al. 2016, §7), which the paper's beam search uses (§6.1)."""

from __future__ import annotations

from torch import Tensor


def gnmt_length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """lp(Y) = ((5 + |Y|) / 6)^alpha; a hypothesis scores log P(Y|X) / lp(Y). alpha = 0: no penalty.

    ``length`` is one length or a float tensor of them (elementwise).
    """
    return ((5.0 + length) / 6.0) ** alpha
