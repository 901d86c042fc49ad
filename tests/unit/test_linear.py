"""transformer.linear: nn.Linear with oneDNN-prepacked weights for CPU inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import transformer.ops.linear as linear_module
from transformer.ops.linear import Linear, PackedWeights, set_packed_inference


@pytest.fixture(autouse=True)
def packed_on():
    set_packed_inference(True)
    yield
    set_packed_inference(True)


@pytest.mark.parametrize("shape", [(5, 16), (3, 1, 16), (2, 7, 16)])
def test_inference_equals_f_linear(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    layer = Linear(16, 24)
    x = torch.randn(*shape)
    with torch.inference_mode():
        out = layer(x)
        part = layer.output_rows(x, 8, 24)
    assert out.shape == (*shape[:-1], 24)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(part, F.linear(x, layer.weight[8:], layer.bias[8:]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("precision", linear_module.PRECISIONS)
def test_fused_relu_is_relu_of_the_same_product(precision: str) -> None:
    """``relu=True`` (the feed-forward network's first layer) is exactly relu of the product at each precision,
    with and without autograd."""
    if precision == "int8" and not linear_module.int8_supported():
        pytest.skip("int8 inference does not run here (int8_supported)")
    if precision == "bfloat16" and not (linear_module.bf16_supported() and linear_module._onednn_works()):
        pytest.skip("this CPU has no bf16 matrix units")
    torch.manual_seed(0)
    layer = Linear(16, 24)
    layer.packed.precision = precision
    x = torch.randn(2, 5, 16)
    with torch.inference_mode():
        assert torch.equal(layer(x, relu=True), F.relu(layer(x)))
    y = layer(x.requires_grad_(), relu=True)
    assert torch.equal(y, F.relu(F.linear(x, layer.weight, layer.bias)))
    y.sum().backward()
    assert x.grad is not None


def test_the_packed_path_is_taken_and_follows_weight_updates() -> None:
    if not linear_module._onednn_works():
        pytest.skip("this torch has no working oneDNN linear operators: the plain path is used throughout")
    torch.manual_seed(0)
    layer = Linear(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        before = layer(x)
        assert len(layer.packed._entries) == 1  # packed once, kept
        layer(x)
        assert len(layer.packed._entries) == 1
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).sum().backward()  # with autograd: plain F.linear, gradients as usual
    assert layer.weight.grad is not None
    optimizer.step()  # an in-place update: the packed copy must be remade
    with torch.no_grad():
        after = layer(x)
        torch.testing.assert_close(after, F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(after, before)
        layer.load_state_dict({"weight": torch.zeros(4, 8), "bias": torch.ones(4)})
        torch.testing.assert_close(layer(x), torch.ones(3, 4))


def test_switched_off_or_with_autograd_it_is_exactly_f_linear() -> None:
    torch.manual_seed(0)
    layer = Linear(8, 4)
    x = torch.randn(3, 8, requires_grad=True)
    out = layer(x)
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))
    out.sum().backward()
    assert x.grad is not None
    set_packed_inference(False)
    with torch.no_grad():
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    assert not layer.packed._entries  # freed when switched off


def test_state_dict_is_that_of_nn_linear() -> None:
    assert set(Linear(3, 2).state_dict()) == set(torch.nn.Linear(3, 2).state_dict())
    assert set(Linear(3, 2, bias=False).state_dict()) == {"weight"}
    cache = PackedWeights()
    with torch.no_grad():
        torch.testing.assert_close(cache.linear(torch.ones(2, 3), torch.ones(4, 3), None), torch.full((2, 4), 3.0))


# -- int8 inference ------------------------------------------------------------------------------------

needs_int8 = pytest.mark.skipif(not linear_module.int8_supported(), reason="int8 does not run here")


def int8_reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """The module docstring's formula in float64: a_m w_n sum_k P_mk Q_nk + b_n."""
    a = x.double().abs().amax(1, keepdim=True) / 127
    s = w.double().abs().amax(1, keepdim=True) / 127
    p, q = torch.round(x.double() / a), torch.round(w.double() / s)
    out = (p @ q.T) * a * s.T
    return out if b is None else out + b.double()


@needs_int8
@pytest.mark.parametrize("shape", [(1, 16), (5, 16), (2, 7, 16)])
def test_int8_is_the_quantized_product_and_close_to_float(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    layer = Linear(16, 24)
    layer.packed.int8 = True
    x = torch.randn(*shape)
    with torch.inference_mode():
        out, part = layer(x), layer.output_rows(x, 8, 24)
    rows = x.reshape(-1, 16)
    torch.testing.assert_close(out.reshape(-1, 24).double(), int8_reference(rows, layer.weight, layer.bias),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(part.reshape(-1, 16).double(),
                               int8_reference(rows, layer.weight[8:], layer.bias[8:]), atol=1e-5, rtol=1e-5)
    exact = F.linear(x, layer.weight, layer.bias)
    assert (out - exact).abs().max() < 0.03 * exact.abs().max()  # two 8-bit roundings: about 1%
    assert out.dtype == torch.float32 and out.shape == exact.shape


@pytest.mark.parametrize("units", [True, False], ids=["int_mm", "float32 product"])
def test_int8_kernels_compute_the_same_integer_sum(units: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With int8 units, torch._int_mm; without (AVX2-only x86), oneDNN's float32 product of the same quantized
    values: the same sum of integers (exact below 2^24), rescaled the same way, so the same outputs."""
    monkeypatch.setattr(linear_module, "int8_units", lambda: units)
    if not linear_module.int8_supported():
        pytest.skip("this torch has no CPU torch._int_mm" if units else "no working oneDNN linear operators")
    torch.manual_seed(0)
    layer = Linear(64, 48)
    layer.packed.int8 = True
    x = torch.randn(9, 64) * 3
    with torch.inference_mode():
        out, fused = layer(x), layer(x, relu=True)
    (_, (q, _)), = layer.packed._entries.values()
    assert q.dtype == (torch.int8 if units else torch.float32)  # the kernel asked for was the one used
    a = x.abs().amax(1, keepdim=True) / 127
    s = layer.weight.abs().amax(1, keepdim=True) / 127
    p, q = torch.round(x / a), torch.round(layer.weight / s)
    sums = (p.double() @ q.double().T).float()  # exact: |sum| <= 64 * 127^2 < 2^24
    assert torch.equal(out, sums * a * s.T + layer.bias)
    assert torch.equal(fused, F.relu(out))


@needs_int8
def test_int8_follows_weight_updates_and_leaves_training_exact() -> None:
    torch.manual_seed(0)
    layer = Linear(8, 4)
    layer.packed.int8 = True
    x = torch.randn(3, 8)
    with torch.no_grad():
        before = layer(x)
    out = layer(x)  # with autograd: exactly F.linear
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))
    out.sum().backward()
    torch.optim.SGD(layer.parameters(), lr=0.5).step()
    with torch.no_grad():
        after = layer(x)
        torch.testing.assert_close(after.double(), int8_reference(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(after, before)
        layer.bias.fill_(10.0)  # a bias-only change is seen too
        assert torch.all(layer(x) > 5)
        layer.packed.int8 = False  # back to float32: the exact product again
        torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)


needs_bf16 = pytest.mark.skipif(not linear_module.bf16_supported(), reason="this CPU has no AMX or AVX512-BF16")


@needs_bf16
@pytest.mark.parametrize("shape", [(1, 16), (5, 16), (2, 7, 16)])
def test_bfloat16_is_the_rounded_product_and_close_to_float(shape: tuple[int, ...]) -> None:
    """x, W and b rounded to bfloat16, the product accumulated in float32 and rounded once to bfloat16."""
    torch.manual_seed(0)
    layer = Linear(16, 24)
    layer.packed.precision = "bfloat16"
    x = torch.randn(*shape)
    with torch.inference_mode():
        out, part = layer(x), layer.output_rows(x, 8, 24)
    bf = torch.bfloat16
    reference = F.linear(x.to(bf).double(), layer.weight.to(bf).double(), layer.bias.to(bf).double())
    assert out.dtype == torch.float32 and out.shape == (*shape[:-1], 24)
    torch.testing.assert_close(out.double(), reference.to(bf).double(), atol=1e-2, rtol=2**-8)
    torch.testing.assert_close(part.double(), reference[..., 8:].to(bf).double(), atol=1e-2, rtol=2**-8)
    exact = F.linear(x, layer.weight, layer.bias)
    assert (out - exact).abs().max() < 0.02 * exact.abs().max()
    with torch.enable_grad():
        assert torch.equal(layer(x), exact)  # training: F.linear, exactly


def test_set_inference_precision_names_the_problem() -> None:
    from transformer.ops.linear import set_inference_precision

    model = torch.nn.Sequential(Linear(4, 4))
    with pytest.raises(ValueError, match="precision must be one of float32, int8, bfloat16, got 'fp8'"):
        set_inference_precision(model, "fp8")
    if not linear_module.bf16_supported():
        with pytest.raises(RuntimeError, match="no bf16 matrix units"):
            set_inference_precision(model, "bfloat16")
    set_inference_precision(model, "float32")
    assert model[0].packed.precision == "float32"
