"""Run configs: TOML sections, typed overrides, clear errors, and a save/load round trip."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from transformer import Architecture, DecodeOptions, TransformerConfig
from transformer.run_config import (
    MODEL_FIELDS,
    DataConfig,
    RunConfig,
    TrainConfig,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_papers_recipe() -> None:
    cfg = load_config(None)
    assert cfg == RunConfig()
    t = cfg.train
    assert (t.warmup, t.betas, t.eps, t.label_smoothing, t.lr_scale) == (4000, (0.9, 0.98), 1e-9, 0.1, 1.0)
    assert (cfg.decode.beam_size, cfg.decode.length_penalty, cfg.decode.max_len) == (4, 0.6, None)
    assert cfg.data.max_tokens == 4096
    assert cfg.model == Architecture() and cfg.model.d_model == 512 and cfg.model.n_heads == 8
    assert set(cfg.model.to_dict()) == set(MODEL_FIELDS)
    assert not {"src_vocab_size", "tgt_vocab_size", "pad_id", "bos_id", "eos_id"} & set(MODEL_FIELDS)
    assert cfg.decode == DecodeOptions()


def test_file_and_typed_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[model]\nd_model = 64\nn_heads = 4\n[train]\nmax_steps = 10\nbetas = [0.8, 0.9]\n'
                    '[data]\ndir = "somewhere"\n')
    cfg = load_config(path, ["train.max_steps=20", "train.lr_scale=2", "train.clip_norm=1.5", "train.bf16=true",
                             "model.dropout=0.3", "decode.max_len=80", "data.dir=elsewhere", "train.device='cpu'",
                             "train.betas=[0.85, 0.95]"])
    assert cfg.model.d_model == 64 and cfg.model.n_heads == 4 and cfg.model.dropout == 0.3
    assert cfg.model.d_ff == 2048  # untouched fields keep the defaults
    assert cfg.train.max_steps == 20 and cfg.train.lr_scale == 2.0 and isinstance(cfg.train.lr_scale, float)
    assert cfg.train.clip_norm == 1.5 and cfg.train.bf16 is True and cfg.train.betas == (0.85, 0.95)
    assert cfg.decode.max_len == 80 and cfg.data.dir == "elsewhere" and cfg.train.device == "cpu"
    assert load_config(path, ["train.clip_norm=none"]).train.clip_norm is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trian.max_steps=3", r"unknown config section \[trian\]: valid sections are model, data, train, decode"),
        ("train.max_step=3", r"unknown field train.max_step: valid fields of \[train\] are seed, max_steps"),
        ("model.dmodel=3", r"unknown field model.dmodel.*d_model"),
        ("model.src_vocab_size=3", "comes from the vocabulary"),
        ("train.max_steps=abc", "train.max_steps: expected int, got 'abc'"),
        ("train.max_steps=1.5", "train.max_steps: expected int, got 1.5"),
        ("train.bf16=1", "train.bf16: expected bool, got 1"),
        ("train.betas=[0.9]", "train.betas: expected a list of 2 values"),
        ("train.warmup=none", "train.warmup: expected int, got None"),
        ("train.max_steps", "must look like section.field=value"),
        ("train.accumulate=0", r"train.accumulate=0 must be > 0"),
        ("train.best_metric=bleu2", "best_metric"),
        ("model.n_heads=7", r"\[model\]: .*divisible by n_heads=7"),
        ("train.device=tpu", "train.device='tpu'"),
        ("train.decay_steps=200000", r"train.decay_steps=200000 must be in \[0, train.max_steps=100000\]"),
        ("train.decay_steps=-1", r"train.decay_steps=-1 must be in \[0,"),
        ("decode.beam_size=0", "decode.beam_size=0 must be >= 1"),
        ("decode.n_best=5", r"decode.n_best=5 must be between 1 and beam_size \(4\)"),
        ("decode.length_penalty=-1", "decode.length_penalty=-1.0 must be >= 0"),
        ("decode.beam=3", r"unknown field decode.beam: valid fields of \[decode\] are beam_size, n_best"),
    ],
)
def test_bad_values_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nmax_steps = \n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(path)
    path.write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(ValueError, match=r"unknown config section \[optimizer\]"):
        load_config(path)
    path.write_text('[train]\nmax_steps = "10"\n')
    with pytest.raises(ValueError, match="train.max_steps: expected int, got '10'"):
        load_config(path)


def test_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["model.d_model=128", "model.norm_first=true", "train.clip_norm=0.5",
                             "train.max_epochs=3", "train.patience=2", "decode.max_len=7", "data.valid_max_tokens=99",
                             "train.betas=[0.5,0.6]", "model.activation=gelu", "train.best_metric=bleu"])
    save_config(cfg, tmp_path / "a.toml")
    assert load_config(tmp_path / "a.toml") == cfg
    defaults = RunConfig()
    save_config(defaults, tmp_path / "b.toml")
    assert load_config(tmp_path / "b.toml") == defaults


def test_every_optional_field_defaults_to_none() -> None:
    # TOML has no null: leaving a None out of the saved file is only lossless if None is the default.
    for cls in (DataConfig, TrainConfig, DecodeOptions):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if type(None) in typing.get_args(hints[f.name]):
                assert f.default is None, f"{cls.__name__}.{f.name}"


@pytest.mark.parametrize("name", ["demo", "multi30k", "base", "big"])
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(REPO / "configs" / f"{name}.toml")
    TransformerConfig.of(cfg.model, src_vocab_size=100, tgt_vocab_size=100)
    assert cfg.train.max_steps > 0


def test_paper_configs_follow_table_3() -> None:
    base = load_config(REPO / "configs" / "base.toml")
    big = load_config(REPO / "configs" / "big.toml")
    names = ("d_model", "n_heads", "d_ff", "n_encoder_layers", "dropout")
    assert {k: getattr(base.model, k) for k in names} == {
        "d_model": 512, "n_heads": 8, "d_ff": 2048, "n_encoder_layers": 6, "dropout": 0.1}
    assert {k: getattr(big.model, k) for k in names} == {
        "d_model": 1024, "n_heads": 16, "d_ff": 4096, "n_encoder_layers": 6, "dropout": 0.3}
    for cfg, steps in ((base, 100_000), (big, 300_000)):
        assert cfg.train.max_steps == steps and cfg.train.warmup == 4000 and cfg.train.label_smoothing == 0.1
        assert cfg.data.max_tokens * cfg.train.accumulate >= 25_000  # ~25k tokens per step (§5.1)
        assert cfg.model.share_embeddings and cfg.model.tie_output


def test_configs_demo_matches_the_packaged_demo_config() -> None:
    """configs/demo.toml is the demo's run config for training by hand: it must not drift from the one
    `transformer demo` ships (src/transformer/demo/demo.toml), whose [demo] section it leaves out."""
    from importlib import resources

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    repo = Path(__file__).resolve().parents[2]
    by_hand = tomllib.loads((repo / "configs" / "demo.toml").read_text(encoding="utf-8"))
    packaged = tomllib.loads(resources.files("transformer.demo").joinpath("demo.toml").read_text("utf-8"))
    packaged.pop("demo")
    by_hand["data"].pop("dir")
    assert by_hand == packaged
    load_config(repo / "configs" / "demo.toml")  # and it is a valid run config
