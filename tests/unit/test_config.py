"""TransformerConfig: the paper's presets (Table 3), validation naming the field, (de)serialisation."""

from __future__ import annotations

import dataclasses
import json

import pytest

from transformer import TransformerConfig

VOCAB = dict(src_vocab_size=100, tgt_vocab_size=100)


def test_base_preset_matches_table_3() -> None:
    cfg = TransformerConfig.preset("base", **VOCAB)
    assert (cfg.d_model, cfg.n_heads, cfg.d_ff) == (512, 8, 2048)
    assert (cfg.n_encoder_layers, cfg.n_decoder_layers) == (6, 6)
    assert cfg.dropout == 0.1
    assert cfg.d_model // cfg.n_heads == 64  # d_k = d_v = 64
    assert cfg.norm_first is False  # post-norm, §3.1
    assert cfg.activation == "relu"  # §3.3
    assert cfg.positional == "sinusoidal"  # §3.5


def test_big_preset_matches_table_3() -> None:
    cfg = TransformerConfig.preset("big", **VOCAB)
    assert (cfg.d_model, cfg.n_heads, cfg.d_ff) == (1024, 16, 4096)
    assert (cfg.n_encoder_layers, cfg.n_decoder_layers) == (6, 6)
    assert cfg.dropout == 0.3


def test_default_constructor_is_the_base_model() -> None:
    assert TransformerConfig(**VOCAB) == TransformerConfig.preset("base", **VOCAB)


def test_preset_overrides_win() -> None:
    cfg = TransformerConfig.preset("base", **VOCAB, dropout=0.0, n_encoder_layers=2)
    assert (cfg.dropout, cfg.n_encoder_layers, cfg.d_model) == (0.0, 2, 512)


def test_unknown_preset_is_named() -> None:
    with pytest.raises(ValueError, match="huge"):
        TransformerConfig.preset("huge", **VOCAB)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (dict(src_vocab_size=0), "src_vocab_size"),
        (dict(tgt_vocab_size=-1), "tgt_vocab_size"),
        (dict(d_model=0), "d_model"),
        (dict(n_heads=0), "n_heads"),
        (dict(d_ff=0), "d_ff"),
        (dict(max_positions=0), "max_positions"),
        (dict(n_encoder_layers=-1), "n_encoder_layers"),
        (dict(n_decoder_layers=-2), "n_decoder_layers"),
        (dict(n_heads=3), "n_heads"),  # 512 is not divisible by 3
        (dict(dropout=1.0), "dropout"),
        (dict(dropout=-0.1), "dropout"),
        (dict(attention_dropout=1.5), "attention_dropout"),
        (dict(activation_dropout=-0.5), "activation_dropout"),
        (dict(activation="tanh"), "activation"),
        (dict(positional="rotary"), "positional"),
        (dict(share_embeddings=True, tgt_vocab_size=50), "share_embeddings"),
        (dict(pad_id=100), "pad_id"),
        (dict(eos_id=-1), "eos_id"),
        (dict(eos_id=0), "eos_id"),  # the same as pad_id
        (dict(eos_id=1), "eos_id"),  # the same as bos_id
        (dict(sinusoid_layout="blocks"), "sinusoid_layout"),
    ],
)
def test_invalid_config_raises_naming_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TransformerConfig(**{**VOCAB, **overrides})


def test_several_problems_are_all_reported() -> None:
    with pytest.raises(ValueError) as info:
        TransformerConfig(**VOCAB, d_model=0, dropout=2.0)
    assert "d_model" in str(info.value) and "dropout" in str(info.value)


def test_config_is_frozen() -> None:
    cfg = TransformerConfig(**VOCAB)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 8  # type: ignore[misc]


@pytest.mark.parametrize("name", ["base", "big", "tiny"])
def test_to_dict_from_dict_round_trip(name: str) -> None:
    cfg = TransformerConfig.preset(name, **VOCAB, share_embeddings=True, norm_first=True, activation="gelu")
    values = cfg.to_dict()
    assert values["d_model"] == cfg.d_model and values["activation"] == "gelu"
    assert TransformerConfig.from_dict(values) == cfg
    assert TransformerConfig.from_dict(json.loads(json.dumps(values))) == cfg  # survives JSON (checkpoints)


def test_to_dict_holds_every_field() -> None:
    cfg = TransformerConfig(**VOCAB)
    assert set(cfg.to_dict()) == {f.name for f in dataclasses.fields(TransformerConfig)}


def test_from_dict_rejects_unknown_fields_by_name() -> None:
    values = {**TransformerConfig(**VOCAB).to_dict(), "n_layers": 6, "zeta": 1}
    with pytest.raises(ValueError, match="n_layers") as info:
        TransformerConfig.from_dict(values)
    assert "zeta" in str(info.value)


def test_from_dict_validates_values() -> None:
    values = {**TransformerConfig(**VOCAB).to_dict(), "dropout": 1.2}
    with pytest.raises(ValueError, match="dropout"):
        TransformerConfig.from_dict(values)


@pytest.mark.parametrize(("activation_dropout", "expected"), [(None, 0.3), (0.0, 0.0), (0.1, 0.1)])
def test_activation_dropout_defaults_to_dropout(activation_dropout: float | None, expected: float) -> None:
    from transformer import Transformer

    cfg = TransformerConfig.preset("tiny", **VOCAB, dropout=0.3, activation_dropout=activation_dropout)
    model = Transformer(cfg)
    inner = [layer.feed_forward.dropout.p for layer in [*model.encoder.layers, *model.decoder.layers]]
    outer = [layer.ff_block.dropout.p for layer in [*model.encoder.layers, *model.decoder.layers]]
    assert inner == [expected] * 6 and outer == [0.3] * 6  # only the FFN's inner dropout changes


def test_architecture_is_the_config_without_its_vocabulary() -> None:
    from transformer import Architecture

    cfg = TransformerConfig.preset("tiny", **VOCAB, pad_id=3, bos_id=4, eos_id=5, norm_first=True)
    architecture = cfg.architecture
    assert architecture == Architecture(**{k: v for k, v in cfg.to_dict().items() if k in architecture.to_dict()})
    assert set(cfg.to_dict()) - set(architecture.to_dict()) == {"src_vocab_size", "tgt_vocab_size", "pad_id",
                                                                 "bos_id", "eos_id"}
    assert TransformerConfig.of(architecture, **VOCAB, pad_id=3, bos_id=4, eos_id=5) == cfg
    assert Architecture() == TransformerConfig(**VOCAB).architecture  # the same defaults: the paper's base
    with pytest.raises(ValueError, match="invalid Architecture: d_model=30 must be divisible by n_heads=8"):
        Architecture(d_model=30)


def test_activation_names_live_in_the_config_and_each_has_a_function() -> None:
    from transformer.config import ACTIVATIONS
    from transformer.feed_forward import ACTIVATION_FUNCTIONS

    assert set(ACTIVATIONS) == set(ACTIVATION_FUNCTIONS)
    for name in ACTIVATIONS:
        TransformerConfig(**VOCAB, activation=name)  # every name is accepted
