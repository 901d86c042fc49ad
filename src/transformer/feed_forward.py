"""Position-wise feed-forward network (§3.3): FFN(x) = W_2 act(W_1 x + b_1) + b_2, alike at every position.

Shapes: B batch, T length, D d_model, F d_ff.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from .config import ACTIVATIONS
from .ops.dropout import Dropout, relu_dropout
from .ops.linear import Linear

# The functions of the activation names of ``transformer.config``.
ACTIVATION_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,  # the paper's
    "gelu": F.gelu,
    "silu": F.silu,
    "swish": F.silu,  # swish with beta = 1 is silu
}
assert set(ACTIVATION_FUNCTIONS) == set(ACTIVATIONS)


class PositionwiseFeedForward(nn.Module):
    """Linear(D, F) -> activation -> dropout -> Linear(F, D)."""

    def __init__(self, d_model: int, d_ff: int, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in ACTIVATION_FUNCTIONS:
            raise ValueError(f"activation={activation!r}: choose one of {sorted(ACTIVATIONS)}")
        self.w_1 = Linear(d_model, d_ff)
        self.w_2 = Linear(d_ff, d_model)
        self.activation = ACTIVATION_FUNCTIONS[activation]
        self.dropout = Dropout(dropout)
        self._relu = activation == "relu"  # relu and dropout fuse into one mask (``relu_dropout``)

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, D)."""
        if self._relu and not (self.training and self.dropout.p > 0):  # no dropout: relu fused into the product
            return self.w_2(self.w_1(x, relu=True))
        h = self.w_1(x)  # (B, T, F)
        if self._relu:
            return self.w_2(relu_dropout(h, self.dropout.p, self.training))
        return self.w_2(self.dropout(self.activation(h)))
