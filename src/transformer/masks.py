"""The one mask convention of this project, and the only place masks are built.

A mask is a **bool tensor, True = "this query may attend to this key"**. It broadcasts to
``(B, H, T_q, T_k)``: source masks are ``(B, 1, 1, S)``, target masks ``(B, 1, T, T)`` (causal AND
key-not-pad). This is the convention of ``torch.nn.functional.scaled_dot_product_attention``; it is
the *opposite* of ``torch.nn.MultiheadAttention``'s ``attn_mask``/``key_padding_mask`` (True = blocked).

Shapes: B batch, S source length, T target length.
"""

from __future__ import annotations

import torch
from torch import Tensor


def source_mask(src: Tensor, pad_id: int) -> Tensor:
    """Keys that are real tokens: ``src != pad``.

    Shapes: src (B, S) int64 -> (B, 1, 1, S) bool.
    """
    return (src != pad_id)[:, None, None, :]


def causal_mask(length: int, device: torch.device | None = None) -> Tensor:
    """Query t may attend to keys 0..t (§3.2.3: "prevent leftward information flow").

    Shapes: -> (1, 1, T, T) bool, lower triangular.
    """
    ones = torch.ones(length, length, dtype=torch.bool, device=device)
    return torch.tril(ones)[None, None]


def target_mask(tgt: Tensor, pad_id: int, causal: bool = True) -> Tensor:
    """Causal AND key-not-pad, where position 0 is never padding: it holds the decoder's start token, which a
    model may share with padding (Marian starts decoding from ``<pad>``). ``causal=False`` (an ablation, for
    training only) leaves out the causal part: every position sees the whole target.

    Shapes: tgt (B, T) int64 -> (B, 1, T, T) bool.
    """
    real = tgt != pad_id  # (B, T)
    real[:, 0] = True
    keys = real[:, None, None, :]  # (B, 1, 1, T)
    if not causal:
        return keys.expand(-1, 1, tgt.size(1), -1)
    return causal_mask(tgt.size(1), tgt.device) & keys
