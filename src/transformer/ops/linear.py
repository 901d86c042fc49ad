"""Linear layers whose inference on the CPU uses weights prepacked for oneDNN.

Linear(x) = x W^T + b, as ``nn.Linear`` (same parameters, same state dict). Without autograd, on the CPU in
float32, the product runs on a copy of W reordered once into oneDNN's blocked layout (the reorder PyTorch's
compiler does when it freezes a model), kept until W changes. Decoding multiplies few rows (one position
per sentence) by every weight matrix at each step, where the blocked layout pays most (docs/performance.md).
With autograd (training), on other devices, other dtypes or under autocast, it is ``F.linear``.

The packed copies double the memory of the weights used in inference; ``set_packed_inference(False)``
turns them off (and frees them at their next use). If the oneDNN operators are missing or disagree with
``F.linear`` on a first check, the plain path is used throughout.

int8 inference (``PackedWeights.int8 = True``, set for a whole model by ``Transformer.set_int8_inference``),
under the same conditions: symmetric quantization with one scale per weight row and per input row,
W_nk ~ w_n * Q_nk with w_n = max_k |W_nk| / 127, x_mk ~ a_m * P_mk with a_m = max_k |x_mk| / 127 (Q, P int8,
rounded), so that (x W^T)_mn ~ a_m * w_n * sum_k P_mk Q_nk: one int8 x int8 -> int32 matrix product
(``torch._int_mm``, oneDNN int8 kernels on x86 CPUs), rescaled to float32, plus the bias in float32.

Shapes: (..., K) -> (..., N) for W (N, K).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_enabled = True
_works: bool | None = None  # the oneDNN operators, checked once
_int8_works: bool | None = None  # torch._int_mm on the CPU, checked once


def set_packed_inference(enabled: bool) -> None:
    """Use (default) or not the prepacked-weight path for inference on the CPU."""
    global _enabled
    _enabled = enabled


def _onednn_works() -> bool:
    global _works
    if _works is None:
        try:
            gen = torch.Generator().manual_seed(0)  # not the global generator: training's random state stays as is
            x, w, b = (torch.randn(*shape, generator=gen) for shape in ((3, 8), (5, 8), (5,)))
            packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
            y = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
            _works = bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5, rtol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _works = False
    return _works


def int8_supported() -> bool:
    """Whether this PyTorch build has an exact int8 x int8 -> int32 matrix product on the CPU."""
    global _int8_works
    if _int8_works is None:
        try:
            gen = torch.Generator().manual_seed(0)
            a, b = (torch.randint(-127, 128, shape, generator=gen, dtype=torch.int8) for shape in ((5, 24), (24, 8)))
            _int8_works = bool(torch.equal(torch._int_mm(a, b), a.int() @ b.int()))
        except (AttributeError, RuntimeError, NotImplementedError):
            _int8_works = False
    return _int8_works


def _quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantization of each row: (M, K) float32 -> P (M, K) int8, scales (M, 1) float32."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-30) / 127.0  # (M, 1)
    return torch.round(x / scale).to(torch.int8), scale


def _int8_linear(x: Tensor, packed: tuple[Tensor, Tensor], bias: Tensor | None) -> Tensor:
    """x W^T + b with W as ``packed`` = (Q^T (K, N) int8, w (N,) float32): (M, K) -> (M, N) float32."""
    q_t, w_scale = packed
    p, x_scale = _quantize_rows(x)
    out = torch._int_mm(p, q_t).float().mul_(x_scale).mul_(w_scale)  # (M, N)
    return out if bias is None else out.add_(bias)


def _packable(x: Tensor, weight: Tensor, int8: bool) -> bool:
    """Inference on the CPU in float32, with the kernels working (and, for float32, packing turned on)."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and (int8_supported() if int8 else _enabled and _onednn_works())
    )


class PackedWeights:
    """Prepacked copies of weight matrices, one per ``slot``, remade when the weight changes (its storage
    or its in-place version counter, which optimizer steps and ``load_state_dict`` advance)."""

    def __init__(self) -> None:
        self._entries: dict[object, tuple[tuple, object]] = {}
        self.int8 = False  # inference with int8 weights (module docstring)

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None, slot: object = None) -> Tensor:
        """x W^T + b: (..., K) -> (..., N)."""
        if not _packable(x, weight, self.int8):
            if self._entries:
                self._entries.clear()
            return F.linear(x, weight, bias)
        key = (self.int8, weight.data_ptr(), weight._version, tuple(weight.shape), weight.stride())
        entry = self._entries.get(slot)
        if entry is None or entry[0] != key:
            if self.int8:
                q, w_scale = _quantize_rows(weight.detach())  # (N, K), (N, 1)
                packed: object = (q.t(), w_scale.view(-1))  # Q^T (K, N) as a view of row-major Q
            else:
                packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
            entry = (key, packed)
            self._entries[slot] = entry
        rows = x.reshape(-1, x.size(-1))  # (M, K)
        if self.int8:
            out = _int8_linear(rows, entry[1], bias)  # (M, N)
        else:
            out = torch.ops.mkldnn._linear_pointwise(rows, entry[1], bias, "none", [], "")  # (M, N)
        return out.view(*x.shape[:-1], out.size(-1))


class Linear(nn.Linear):
    """``nn.Linear`` with the prepacked inference path; ``output_rows(x, start, stop)`` computes only the
    outputs start:stop (rows start:stop of W and b: one part of a fused projection), packed on its own."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.packed = PackedWeights()

    def forward(self, x: Tensor) -> Tensor:
        return self.packed.linear(x, self.weight, self.bias)

    def output_rows(self, x: Tensor, start: int, stop: int) -> Tensor:
        """x W[start:stop]^T + b[start:stop]: (..., K) -> (..., stop - start)."""
        bias = None if self.bias is None else self.bias[start:stop]
        return self.packed.linear(x, self.weight[start:stop], bias, slot=(start, stop))


def set_int8_inference(model: nn.Module, enabled: bool = True) -> None:
    """int8 weights (module docstring) in every prepacked product of ``model``: each ``Linear`` and any other
    ``PackedWeights`` a module holds (the output projection). float32 inference on the CPU only; training,
    autocast and other devices are unchanged.

    Raises:
        RuntimeError: ``model`` is not on the CPU, or this PyTorch build has no int8 matrix product there.
    """
    if enabled:
        devices = {p.device for p in model.parameters()}
        if devices != {torch.device("cpu")}:
            raise RuntimeError(f"int8 inference runs on the CPU only, but the model is on {sorted(map(str, devices))}")
        if not int8_supported():
            raise RuntimeError("this PyTorch build has no int8 matrix product on the CPU (torch._int_mm)")
    for packed in packed_weights(model):
        packed.int8 = enabled


def packed_weights(model: nn.Module) -> list[PackedWeights]:
    """Every ``PackedWeights`` held by a module of ``model``, once each."""
    found: dict[int, PackedWeights] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, PackedWeights):
                found[id(value)] = value
    return list(found.values())
