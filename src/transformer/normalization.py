"""The normalisation of each sublayer (§3.1): LayerNorm, the paper's, and the ablations the experiments compare.

- ``layer``: LayerNorm(x) = g * (x - mean_D(x)) / sqrt(var_D(x) + eps) + b, over each position's D features.
- ``rms``: RMSNorm(x) = g * x / sqrt(mean_D(x^2) + eps), the same without centring.
- ``batch``: BatchNorm over the batch and the positions, padding included, as a drop-in for LayerNorm: each
  feature normalised by its mean and variance over all B x T positions of the batch (running estimates in
  eval mode). A position's output then depends on the other sentences of its batch and on their padding.
- ``none``: the identity.

Shapes: B batch, T length, D d_model.
"""

from __future__ import annotations

from torch import Tensor, nn

from .config import NORMS


class SequenceBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over every position of a (..., D) tensor: statistics per feature over all leading dims."""

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        return super().forward(x.reshape(-1, x.size(-1))).view(x.shape)


def make_norm(kind: str, d_model: int, eps: float) -> nn.Module:
    """The normalisation ``kind`` (one of ``NORMS``) over ``d_model`` features; its parameters are ``weight`` and
    (but for RMSNorm) ``bias``."""
    if kind == "layer":
        return nn.LayerNorm(d_model, eps=eps)
    if kind == "rms":
        return nn.RMSNorm(d_model, eps=eps)
    if kind == "batch":
        return SequenceBatchNorm(d_model, eps=eps)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm={kind!r}: choose one of {', '.join(NORMS)}")
