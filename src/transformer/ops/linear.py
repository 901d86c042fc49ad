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
(``torch._int_mm``, oneDNN int8 kernels on x86 CPUs), rescaled to float32, plus the bias in float32. On x86
CPUs without int8 dot-product units (VNNI or AMX: AVX2-only ones) ``torch._int_mm`` runs a slow kernel, 14-27x
slower than float32 at these shapes (docs/performance.md); there the same integer sum is computed by the float32
product of P and Q (prepacked as float32): exact while K * 127^2 < 2^24 (K <= 1040), else within float32
rounding, at float32's speed. int8 gains nothing on such CPUs, but its products are those of ``torch._int_mm``.

bfloat16 inference (``PackedWeights.precision = "bfloat16"``, ``Transformer.set_inference_precision``), under
the same conditions, on CPUs with bf16 matrix units (AMX or AVX512-BF16, ``bf16_supported``): W and b are
prepacked in bfloat16, x is rounded to bfloat16, the product is accumulated in float32 by oneDNN and rounded
to bfloat16, and the result comes back as float32 (8 significant bits: relative error <= 2^-9 per rounding).

Shapes: (..., K) -> (..., N) for W (N, K).
"""

from __future__ import annotations

import functools
import platform

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_enabled = True
_works: bool | None = None  # the oneDNN operators, checked once
_int8_works: bool | None = None  # torch._int_mm on the CPU, checked once
PRECISIONS = ("float32", "int8", "bfloat16")  # of the prepacked inference path


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
    """Whether int8 inference runs here: on ``torch._int_mm`` where it is exact and the CPU has int8 units
    (``int8_units``), else on oneDNN's float32 product of the quantized values (module docstring)."""
    return _int_mm_exact() if int8_units() else _onednn_works()


def _int_mm_exact() -> bool:
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


@functools.cache
def int8_units() -> bool:
    """Whether ``torch._int_mm`` runs at speed here: not an x86 CPU without int8 dot-product units (AVX512-VNNI or
    AMX), where oneDNN falls back to a kernel 14-27x slower than float32 (measured on an AVX2 AMD EPYC). Asked
    at every int8 product, so read from the CPU once."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, name, lambda: False)()) for name in ("_is_vnni_supported", "_is_amx_tile_supported"))


def bf16_supported() -> bool:
    """Whether this CPU has bf16 matrix units (AMX or AVX512-BF16), where oneDNN's bfloat16 products are several
    times faster than float32 ones (without them they are emulated, and slower)."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def auto_precision(device: torch.device | str) -> str:
    """The inference precision the command line picks unless told (``--precision auto``): bfloat16 on a CPU with
    bf16 matrix units, where it measured fastest (1.7-1.8x float32 at the paper's size) and within 0.1 BLEU of
    float32 on Multi30k (README "Speed"); float32 elsewhere: on GPUs these precisions do not apply, on AVX2-only
    CPUs int8 measured slower than float32 (no int8 units, ``int8_units``), and on others it is unmeasured."""
    if torch.device(device).type == "cpu" and bf16_supported() and _onednn_works():
        return "bfloat16"
    return "float32"


def _quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 quantization of each row: (M, K) float32 -> P (M, K) int8, scales (M, 1) float32."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-30) / 127.0  # (M, 1)
    return torch.round(x / scale).to(torch.int8), scale


def _int8_linear(x: Tensor, packed: tuple[Tensor, Tensor], bias: Tensor | None, relu: bool = False) -> Tensor:
    """x W^T + b (then relu) with W as ``packed`` = (Q^T (K, N) int8, w (N,) float32), or (Q as float32 prepacked
    for oneDNN, w) where the CPU has no int8 units (``int8_units``): (M, K) -> (M, N) float32."""
    q, w_scale = packed
    p, x_scale = _quantize_rows(x)
    if q.dtype == torch.int8:
        acc = torch._int_mm(p, q)  # (M, N) int32
        # Converted to float32 in its own memory (4 bytes either way; each element is read, then written): no
        # second (M, N) buffer, which at the output projection's size is page-faulted in anew at every call.
        out = acc.view(torch.float32).copy_(acc)
    else:
        out = torch.ops.mkldnn._linear_pointwise(p.float(), q, None, "none", [], "")  # (M, N) sum_k P_mk Q_nk
    out = out.mul_(x_scale).mul_(w_scale)
    out = out if bias is None else out.add_(bias)
    return out.relu_() if relu else out


def _packable(x: Tensor, weight: Tensor, precision: str) -> bool:
    """Inference on the CPU in float32, with the kernels working (and, for float32, packing turned on)."""
    works = int8_supported() if precision == "int8" else (_enabled or precision == "bfloat16") and _onednn_works()
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and works
    )


def _pack(weight: Tensor, bias: Tensor | None, precision: str) -> tuple:
    """The inference form of (W, b) at ``precision``: what ``_product`` takes."""
    w = weight.detach()
    if precision == "int8":
        q, w_scale = _quantize_rows(w)  # (N, K), (N, 1)
        if not int8_units():
            return torch.ops.mkldnn._reorder_linear_weight(q.float(), None), w_scale.view(-1)
        return q.t(), w_scale.view(-1)  # Q^T (K, N) as a view of row-major Q
    if precision == "bfloat16":
        b16 = None if bias is None else bias.detach().to(torch.bfloat16)
        return torch.ops.mkldnn._reorder_linear_weight(w.to(torch.bfloat16).contiguous(), None), b16
    return (torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), None),)


def _product(rows: Tensor, packed: tuple, bias: Tensor | None, precision: str, relu: bool = False) -> Tensor:
    """rows W^T + b (then relu, fused into the product where oneDNN runs it) by the packed weights: (M, K) float32
    -> (M, N) float32."""
    if precision == "int8":
        return _int8_linear(rows, packed, bias, relu)
    after = "relu" if relu else "none"
    if precision == "bfloat16":
        w16, b16 = packed
        return torch.ops.mkldnn._linear_pointwise(rows.to(torch.bfloat16), w16, b16, after, [], "").float()
    return torch.ops.mkldnn._linear_pointwise(rows, packed[0], bias, after, [], "")


class PackedWeights:
    """Prepacked copies of weight matrices, one per ``slot``, remade when the weight changes (its storage
    or its in-place version counter, which optimizer steps and ``load_state_dict`` advance) or the precision
    does. ``precision``: one of ``PRECISIONS`` (module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[object, tuple[tuple, tuple]] = {}
        self.precision = "float32"

    @property
    def int8(self) -> bool:
        """Whether the precision is int8."""
        return self.precision == "int8"

    @int8.setter
    def int8(self, enabled: bool) -> None:
        self.precision = "int8" if enabled else "float32"

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None, slot: object = None, relu: bool = False) -> Tensor:
        """x W^T + b, or relu(x W^T + b) with ``relu``: (..., K) -> (..., N)."""
        if not _packable(x, weight, self.precision):
            if self._entries:
                self._entries.clear()
            return F.relu(F.linear(x, weight, bias)) if relu else F.linear(x, weight, bias)
        key = (self.precision, weight.data_ptr(), weight._version, tuple(weight.shape), weight.stride(),
               None if bias is None else (bias.data_ptr(), bias._version))
        entry = self._entries.get(slot)
        if entry is None or entry[0] != key:
            entry = (key, _pack(weight, bias, self.precision))
            self._entries[slot] = entry
        out = _product(x.reshape(-1, x.size(-1)), entry[1], bias, self.precision, relu)  # (M, N)
        return out.view(*x.shape[:-1], out.size(-1))


class Linear(nn.Linear):
    """``nn.Linear`` with the prepacked inference path; ``output_rows(x, start, stop)`` computes only the
    outputs start:stop (rows start:stop of W and b: one part of a fused projection), packed on its own."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.packed = PackedWeights()

    def forward(self, x: Tensor, relu: bool = False) -> Tensor:
        """x W^T + b, or relu(x W^T + b) with ``relu`` (one pass fewer in packed inference)."""
        return self.packed.linear(x, self.weight, self.bias, relu=relu)

    def output_rows(self, x: Tensor, start: int, stop: int) -> Tensor:
        """x W[start:stop]^T + b[start:stop]: (..., K) -> (..., stop - start)."""
        bias = None if self.bias is None else self.bias[start:stop]
        return self.packed.linear(x, self.weight[start:stop], bias, slot=(start, stop))


def set_inference_precision(model: nn.Module, precision: str) -> None:
    """The precision of every prepacked product of ``model`` (each ``Linear`` and any other ``PackedWeights`` a
    module holds, the output projection): "float32", "int8" or "bfloat16" (module docstring). Float32
    inference on the CPU only: training, autocast and other devices are unchanged.

    Raises:
        ValueError: an unknown precision.
        RuntimeError: ``model`` is not on the CPU, or this PyTorch build or CPU cannot run the precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "float32":
        devices = {p.device for p in model.parameters()}
        if devices != {torch.device("cpu")}:
            raise RuntimeError(f"{precision} inference runs on the CPU only, but the model is on "
                               f"{sorted(map(str, devices))}")
    if precision == "int8" and not int8_supported():
        raise RuntimeError("this PyTorch build has no int8 matrix product on the CPU (torch._int_mm) "
                           "nor working oneDNN linear operators")
    if precision == "bfloat16" and not (bf16_supported() and _onednn_works()):
        raise RuntimeError("this CPU has no bf16 matrix units (AMX or AVX512-BF16), where bfloat16 products "
                           "would be slower than float32 ones")
    for packed in packed_weights(model):
        packed.precision = precision


def set_int8_inference(model: nn.Module, enabled: bool = True) -> None:
    """``set_inference_precision(model, "int8" if enabled else "float32")``."""
    set_inference_precision(model, "int8" if enabled else "float32")


def packed_weights(model: nn.Module) -> list[PackedWeights]:
    """Every ``PackedWeights`` held by a module of ``model``, once each."""
    found: dict[int, PackedWeights] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, PackedWeights):
                found[id(value)] = value
    return list(found.values())
