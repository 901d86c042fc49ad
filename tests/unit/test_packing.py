"""Packing the real positions of a padded batch (``transformer.ops.packing``) and the model's packed path."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import transformer.ops.packing
from transformer import Transformer
from transformer.ops.packing import Packing


def test_pack_takes_the_real_positions_in_order_and_unpack_puts_them_back() -> None:
    real = torch.tensor([[True, True, False], [True, False, False]])
    x = torch.arange(12.0).view(2, 3, 2)
    packing = Packing.of(real, max_real_fraction=1.0)
    assert packing is not None
    packed = packing.pack(x)
    torch.testing.assert_close(packed, torch.tensor([[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]]))
    torch.testing.assert_close(packing.unpack(packed), x * real[..., None])


def test_packing_only_where_enough_is_padding() -> None:
    real = torch.ones(4, 10, dtype=torch.bool)
    real[:, 9] = False  # 90% real
    assert Packing.of(real, max_real_fraction=0.85) is None
    assert Packing.of(real, max_real_fraction=0.9) is not None
    real[:2, 5:] = False  # 65% real
    assert Packing.of(real) is not None


def test_pack_and_unpack_pass_gradients_through() -> None:
    real = torch.tensor([[True, False], [True, True]])
    packing = Packing.of(real, max_real_fraction=1.0)
    assert packing is not None
    x = torch.randn(2, 2, 3, requires_grad=True)
    packing.unpack(packing.pack(x) * 2).sum().backward()
    torch.testing.assert_close(x.grad, 2 * real[..., None].float().expand(2, 2, 3))


def _run(model: Transformer, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    logits = model(src, tgt_in)
    real = tgt_in != 0
    (logits.logsumexp(-1) * real).sum().backward()
    return logits.detach() * real[..., None], {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("recompute", [False, True])
def test_packed_model_equals_the_padded_one_in_values_and_gradients(
    make_cfg, make_tokens: Callable[..., torch.Tensor], monkeypatch: pytest.MonkeyPatch, norm_first: bool,
    recompute: bool,
) -> None:
    cfg = make_cfg(src_vocab_size=29, tgt_vocab_size=29, norm_first=norm_first)
    torch.manual_seed(0)
    model = Transformer(cfg).train()  # training mode (no dropout): the packed path is for training first
    model.recompute_layers(recompute)
    src = make_tokens([9, 2, 5, 1], 29)  # 17 of 36 positions real
    tgt_in = make_tokens([4, 6, 3, 5], 29, start_with_bos=True)
    rows: list[int] = []
    hook = model.encoder.layers[0].self_attn.w_qkv.register_forward_hook(
        lambda _m, args, _out: rows.append(args[0].shape[0]))
    monkeypatch.setattr(transformer.ops.packing, "MAX_REAL_FRACTION", 0.0)  # never pack
    padded, padded_grads = _run(model, src, tgt_in)
    monkeypatch.setattr(transformer.ops.packing, "MAX_REAL_FRACTION", 1.0)  # always pack
    packed, packed_grads = _run(model, src, tgt_in)
    hook.remove()
    assert rows[0] == 4 and rows[-1] == 17  # padded (B, S, D) batch rows, then the 17 real positions alone
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)


def test_packed_encoder_output_is_zero_at_padding_and_decoding_agrees(
    make_cfg, make_tokens: Callable[..., torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Transformer(make_cfg(src_vocab_size=29, tgt_vocab_size=29)).eval()
    src = make_tokens([8, 3, 1], 29)
    with torch.no_grad():
        monkeypatch.setattr(transformer.ops.packing, "MAX_REAL_FRACTION", 0.0)
        memory = model.encode(src)
        tokens = model.generate(src, beam_size=3, max_len=6)
        monkeypatch.setattr(transformer.ops.packing, "MAX_REAL_FRACTION", 1.0)
        packed_memory = model.encode(src)
        packed_tokens = model.generate(src, beam_size=3, max_len=6)
    real = (src != 0)[..., None]
    assert bool((packed_memory.masked_select(~real) == 0).all())
    torch.testing.assert_close(packed_memory * real, memory * real, atol=1e-5, rtol=1e-5)
    assert torch.equal(packed_tokens, tokens)
