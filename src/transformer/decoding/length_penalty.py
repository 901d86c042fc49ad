"""Length normalisation of beam search scores: a hypothesis Y scores log P(Y|X) / lp(|Y|).

``gnmt`` (Wu et al. 2016, §7), which the paper's beam search uses (§6.1): lp = ((5 + |Y|) / 6)^alpha.
``power`` (Hugging Face's and CTranslate2's ``length_penalty``): lp = |Y|^alpha.
Both are 1 at alpha = 0 (rank by log P alone) and grow with |Y| for alpha >= 0, which the search's stopping
bound needs. |Y| counts the EOS (or, at the length limit, the last token).
"""

from __future__ import annotations

from torch import Tensor

LENGTH_NORMALIZATIONS = ("gnmt", "power")


def gnmt_length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """lp(Y) = ((5 + |Y|) / 6)^alpha; a hypothesis scores log P(Y|X) / lp(Y). alpha = 0: no penalty.

    ``length`` is one length or a float tensor of them (elementwise).
    """
    return ((5.0 + length) / 6.0) ** alpha


def power_length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """lp(Y) = |Y|^alpha (Hugging Face's ``length_penalty``). ``length``: one length or a float tensor."""
    return length**alpha


def length_penalty(length: int | Tensor, alpha: float, kind: str = "gnmt") -> float | Tensor:
    """lp(Y) of normalisation ``kind`` (``LENGTH_NORMALIZATIONS``)."""
    if kind == "gnmt":
        return gnmt_length_penalty(length, alpha)
    if kind == "power":
        return power_length_penalty(length, alpha)
    raise ValueError(f"length normalization {kind!r}: choose one of {', '.join(LENGTH_NORMALIZATIONS)}")
