"""The ablation switches (``Architecture.norm``, ``scale_attention``, ``positional="none"``, ``residual``,
``causal_mask``, ``feed_forward``): each changes what it says and nothing else, and the paper's model is the
default. Shapes: B batch, S source length, T target length, V vocabulary."""

from __future__ import annotations

import pytest
import torch

from transformer import DecodeOptions, Transformer
from transformer.attention import attention
from transformer.config import ABLATIONS, Architecture
from transformer.interop.marian import MarianError, check_exportable
from transformer.interop.torch_nn import weight_map
from transformer.normalization import SequenceBatchNorm, make_norm


def tokens(b: int, t: int, low: int = 3, high: int = 13, seed: int = 0) -> torch.Tensor:
    return torch.randint(low, high, (b, t), generator=torch.Generator().manual_seed(seed))


def test_the_paper_is_the_default_and_the_switches_are_known() -> None:
    paper = Architecture()
    assert paper.ablations() == {} and {name: getattr(paper, name) for name in ABLATIONS} == ABLATIONS
    off = Architecture(norm="batch", scale_attention=False, positional="none", causal_mask=False)
    assert off.ablations() == {"norm": "batch", "scale_attention": False, "causal_mask": False, "positional": "none"}
    with pytest.raises(ValueError, match="norm='group' must be one of layer, rms, batch, none"):
        Architecture(norm="group")


def test_the_default_model_has_the_same_parameters_and_initial_values(make_cfg) -> None:
    """The switches add no parameter and draw nothing from the RNG on the default path: two models built from
    the same seed, one with the switches spelt out at the paper's values, are the same bit for bit."""
    torch.manual_seed(3)
    default = Transformer(make_cfg())
    torch.manual_seed(3)
    spelt = Transformer(make_cfg(**ABLATIONS, positional="sinusoidal"))
    assert list(default.state_dict()) == list(spelt.state_dict())
    for (name, a), b in zip(default.state_dict().items(), spelt.state_dict().values()):
        assert torch.equal(a, b), name


def test_without_the_scale_the_attention_scores_are_sqrt_dk_larger() -> None:
    q, k, v = torch.randn(3, 2, 4, 64).unbind(0)
    _, scaled = attention(q, k, v, need_weights=True)
    _, unscaled = attention(q, k, v, need_weights=True, scale=1.0)
    expected = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
    torch.testing.assert_close(unscaled, expected)
    torch.testing.assert_close(scaled, torch.softmax(q @ k.transpose(-2, -1) / 8.0, dim=-1))


def test_the_fused_kernel_and_the_formula_agree_without_the_scale(make_cfg) -> None:
    """Training shapes long enough for the fused kernel, and a decoding step by the formula: one model."""
    model = Transformer(make_cfg(scale_attention=False)).eval()
    attn = model.encoder.layers[0].self_attn
    assert attn.scale == 1.0
    x = torch.randn(2, 80, 16)
    with torch.no_grad():
        fused, _ = attn(x)  # 80 queries: the fused kernel
        formula, _ = attn(x, need_weights=True)
    torch.testing.assert_close(fused, formula, atol=1e-5, rtol=1e-5)


def test_without_positions_the_encoder_is_permutation_equivariant(make_cfg) -> None:
    src = tokens(2, 9)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    for positional, equivariant in (("none", True), ("sinusoidal", False), ("learned", False)):
        model = Transformer(make_cfg(positional=positional)).eval()
        if positional == "learned":
            torch.nn.init.normal_(model.src_pos.table)
        with torch.no_grad():
            out, permuted = model.encode(src), model.encode(src[:, perm])
        difference = (out[:, perm] - permuted).abs().max().item()
        assert (difference < 1e-5) == equivariant, (positional, difference)


def test_batch_norm_breaks_batch_invariance_and_layer_norm_keeps_it(make_cfg) -> None:
    """A sentence's encoding alone and inside a padded batch of others: the same with LayerNorm and RMSNorm
    (train mode too), different with BatchNorm, whose statistics span the batch and its padding."""
    pad = 0
    sentence = tokens(1, 5)
    others = torch.cat([tokens(1, 11, seed=2), torch.cat([tokens(1, 4, seed=3), torch.full((1, 7), pad)], 1)])
    batch = torch.cat([torch.cat([sentence, torch.full((1, 6), pad)], 1), others])  # (3, 11)
    for norm, invariant in (("layer", True), ("rms", True), ("none", True), ("batch", False)):
        model = Transformer(make_cfg(norm=norm)).train()  # dropout 0: train mode differs only in BatchNorm
        with torch.no_grad():
            alone, inside = model.encode(sentence)[0], model.encode(batch)[0, :5]
        assert torch.allclose(alone, inside, atol=1e-5) == invariant, norm


def test_sequence_batch_norm_normalises_each_feature_over_every_position() -> None:
    norm = SequenceBatchNorm(4, eps=1e-5).train()
    x = torch.randn(3, 5, 4) * 3 + 2
    y = norm(x).reshape(-1, 4)
    torch.testing.assert_close(y.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert isinstance(make_norm("none", 4, 1e-5), torch.nn.Identity)


def test_without_the_causal_mask_a_later_token_changes_earlier_logits(make_cfg) -> None:
    src, tgt = tokens(1, 6), tokens(1, 5, seed=4)
    changed = tgt.clone()
    changed[0, 4] = 3 if tgt[0, 4] != 3 else 4
    for causal in (True, False):
        model = Transformer(make_cfg(causal_mask=causal)).eval()
        with torch.no_grad():
            before, after = model(src, tgt), model(src, changed)
        assert torch.equal(before[0, :4], after[0, :4]) == causal, causal
        assert not torch.equal(before[0, 4], after[0, 4])


def test_a_model_without_the_causal_mask_cannot_generate(make_cfg) -> None:
    model = Transformer(make_cfg(causal_mask=False)).eval()
    with pytest.raises(ValueError, match="without the causal mask"):
        model.generate(tokens(1, 4), DecodeOptions(beam_size=1, max_len=3))


@pytest.mark.parametrize("norm_first", [False, True])
def test_without_residual_connections_or_the_feed_forward_network(make_cfg, norm_first: bool) -> None:
    src, tgt = tokens(2, 6), tokens(2, 5, seed=5)
    without_ffn = Transformer(make_cfg(feed_forward=False, norm_first=norm_first)).eval()
    assert not any("feed_forward" in name or "ff_block" in name for name in without_ffn.state_dict())
    layer = without_ffn.encoder.layers[0]
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        assert torch.equal(layer.feed_forward_block(x), x)
        plain = Transformer(make_cfg(residual=False, norm_first=norm_first)).eval()
        block = plain.encoder.layers[0].attn_block
        sublayer = lambda h: 2 * h + 1  # noqa: E731
        expected = (block.dropout(sublayer(block.norm(x))) if norm_first else block.norm(sublayer(x)))
        torch.testing.assert_close(block(x, sublayer), expected)
        for model in (without_ffn, plain):
            assert model(src, tgt).shape == (2, 5, 13)
            assert model.generate(src, DecodeOptions(beam_size=2, max_len=4)).shape[0] == 2  # they still decode


def test_exporters_refuse_an_ablation_naming_it(make_cfg) -> None:
    from transformer.interop.ctranslate2 import export_ctranslate2

    model = Transformer(make_cfg(norm="rms"))
    with pytest.raises(MarianError, match="norm='rms' cannot be exported to Marian"):
        check_exportable(model)
    with pytest.raises(ValueError, match="norm='rms' cannot be exported to torch.nn.Transformer"):
        weight_map(model.cfg)
    pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed")
    with pytest.raises(ValueError, match="cannot be exported to CTranslate2"):
        export_ctranslate2(model, None, None, "/nonexistent/out")
