"""Weights on disk (``transformer.checkpoint``): safetensors with ties restored, atomic writes
(``transformer.io``), and one clear error for every file that cannot be loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

from transformer import Transformer, checkpoint
from transformer.checkpoint import CheckpointError, load_weights, read_metadata, save_weights
from transformer.io import atomic_write
from transformer.run_dir import load_model

SMALL = dict(n_encoder_layers=1, n_decoder_layers=1)  # of the tests' TINY config (conftest)


@pytest.fixture
def make_model(make_cfg):
    """``make_model(**changes)``: a one-layer model of the tests' config."""
    return lambda **changes: Transformer(make_cfg(**{**SMALL, **changes}))


@pytest.mark.parametrize(
    "overrides",
    [dict(share_embeddings=True), dict(share_embeddings=False), dict(tie_output=False), dict(norm_first=True,
                                                                                          positional="learned")],
)
def test_weights_round_trip_restores_values_and_ties(tmp_path: Path, overrides: dict, make_model) -> None:
    model = make_model(**overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # not the init values
    save_weights(model, tmp_path / "w.safetensors", {"step": 7, "note": "x"})
    loaded, meta = load_model(tmp_path / "w.safetensors")
    assert not loaded.training
    assert meta["step"] == 7 and meta["note"] == "x" and meta["config"] == model.cfg.to_dict()
    assert loaded.cfg == model.cfg
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name
    # the ties are real again: one tensor, not equal copies
    if model.cfg.tie_output:
        assert loaded.output_weight.data_ptr() == loaded.tgt_embed.weight.data_ptr()
    if model.cfg.share_embeddings:
        assert loaded.src_embed.weight.data_ptr() == loaded.tgt_embed.weight.data_ptr()
    else:
        assert loaded.src_embed.weight.data_ptr() != loaded.tgt_embed.weight.data_ptr()
    # each tensor stored once
    stored = safetensors.torch.load_file(str(tmp_path / "w.safetensors"))
    assert len(stored) == len({t.data_ptr() for t in want.values()})
    src, tgt = torch.tensor([[5, 6, 2]]), torch.tensor([[1, 7, 8]])
    torch.testing.assert_close(loaded(src, tgt), model.eval()(src, tgt), rtol=0, atol=0)


def test_failed_write_leaves_the_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_model
) -> None:
    model = make_model()
    target = tmp_path / "best.safetensors"
    save_weights(model, target, {"step": 1})
    before = target.read_bytes()

    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken_save)
    with torch.no_grad():
        model.encoder.layers[0].feed_forward.w_1.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_weights(model, target, {"step": 2})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors"]  # no temp file left
    assert load_model(target)[1]["step"] == 1

    def interrupted(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    (tmp_path / "x.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.txt", interrupted)
    assert (tmp_path / "x.txt").read_text() == "old"


def test_rejects_foreign_safetensors(tmp_path: Path) -> None:
    safetensors.torch.save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a transformer weights file"):
        load_model(tmp_path / "other.safetensors")


def _saved(tmp_path: Path, model: Transformer) -> tuple[Path, bytes]:
    path = tmp_path / "w.safetensors"
    save_weights(model, path, {"step": 3})
    return path, path.read_bytes()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda data: data[: len(data) // 2], "truncated or corrupted"),  # cut in the tensor data
        (lambda data: data[:20], "truncated or corrupted"),  # cut in the header
        (lambda data: b"", "truncated or corrupted"),
        (lambda data: b"GIF89a" + data[6:], "truncated or corrupted"),  # another file's bytes at the start
    ],
    ids=["half", "header", "empty", "overwritten"],
)
def test_a_damaged_file_is_one_clear_error_naming_it(tmp_path: Path, damage, problem: str, make_model) -> None:
    path, data = _saved(tmp_path, make_model())
    path.write_bytes(damage(data))
    for load in (read_metadata, load_weights, load_model):
        with pytest.raises(CheckpointError, match=problem) as info:
            load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        assert info.value.path == path


def test_metadata_and_tensors_that_do_not_fit_are_named(tmp_path: Path, make_model) -> None:
    model = make_model()
    tensors, aliases = checkpoint.unique_state_dict(model)
    wrong = dict(model.cfg.to_dict(), d_ff=48)  # the config says 48, the tensors are 32 wide
    checkpoint.write_weights(tmp_path / "shapes.safetensors", tensors, wrong, aliases)
    with pytest.raises(CheckpointError, match="tensors do not fit its model config"):
        load_weights(tmp_path / "shapes.safetensors")
    checkpoint.write_weights(tmp_path / "config.safetensors", tensors, dict(model.cfg.to_dict(), d_model=-1), aliases)
    with pytest.raises(CheckpointError, match="model config is not valid: .*d_model=-1"):
        load_weights(tmp_path / "config.safetensors")
    del tensors["encoder.layers.0.feed_forward.w_1.bias"]
    checkpoint.write_weights(tmp_path / "missing.safetensors", tensors, model.cfg.to_dict(), aliases)
    with pytest.raises(CheckpointError, match="missing.safetensors: its tensors do not fit.*w_1.bias"):
        load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError, match="no such file"):
        read_metadata(tmp_path / "absent.safetensors")


def test_a_file_of_an_earlier_version_loads_its_missing_fields_the_defaults(tmp_path: Path, make_model) -> None:
    """Files written before a config field existed (the Marian and ablation fields) hold the paper's model: they
    load, and ``load_weights_into`` accepts them for a model of today's defaults; another config is named."""
    model = make_model()
    tensors, aliases = checkpoint.unique_state_dict(model)
    new_fields = ("sinusoid_layout", "scale_embeddings", "output_bias", "norm", "scale_attention", "residual",
                  "causal_mask", "feed_forward")
    old = {k: v for k, v in model.cfg.to_dict().items() if k not in new_fields}
    checkpoint.write_weights(tmp_path / "old.safetensors", tensors, old, aliases)
    loaded, _ = load_weights(tmp_path / "old.safetensors")
    assert loaded.cfg == model.cfg
    checkpoint.load_weights_into(make_model(), tmp_path / "old.safetensors")
    with pytest.raises(CheckpointError, match=r"another config \(stored, expected\): \{'d_ff': \(32, 48\)\}"):
        checkpoint.load_weights_into(make_model(d_ff=48), tmp_path / "old.safetensors")
