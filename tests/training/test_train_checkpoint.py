"""Checkpoints: safetensors weights with ties restored, weights-only training state, atomic writes, pruning."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from transformer import Transformer, TransformerConfig
from transformer.training import checkpoint
from transformer.training.checkpoint import (
    atomic_write,
    checkpoint_paths,
    latest_checkpoint,
    list_checkpoints,
    load_model,
    load_training_state,
    rng_state,
    save_checkpoint,
    save_weights,
    set_rng_state,
)

SMALL = dict(src_vocab_size=13, tgt_vocab_size=13, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1,
             n_decoder_layers=1)


def _model(**overrides) -> Transformer:
    return Transformer(TransformerConfig(**{**SMALL, **overrides}))


@pytest.mark.parametrize(
    "overrides",
    [dict(share_embeddings=True), dict(share_embeddings=False), dict(tie_output=False), dict(norm_first=True,
                                                                                          positional="learned")],
)
def test_weights_round_trip_restores_values_and_ties(tmp_path: Path, overrides: dict) -> None:
    model = _model(**overrides)
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


def test_training_state_is_weights_only_and_complete(tmp_path: Path) -> None:
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.tensor([[4, 2]]), torch.tensor([[1, 5]])).sum().backward()
    opt.step()
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    progress = {"step": 1, "epoch": 0, "batch_in_epoch": 1, "best_score": None}
    state = {"progress": progress, "optimizer": opt.state_dict(), "rng": [rng_state()]}
    expected = (random.random(), np.random.rand(), torch.rand(3))  # what comes after the saved states
    path = save_checkpoint(tmp_path, 1, model, state, keep_last=3)
    assert path == checkpoint_paths(tmp_path, 1)[0] == tmp_path / "checkpoints" / "step_00000001.safetensors"
    loaded = load_training_state(path)  # torch.load(weights_only=True) inside
    assert loaded["progress"] == state["progress"]
    opt2 = torch.optim.Adam(_model().parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    for a, b in zip(opt.state.values(), opt2.state.values()):
        for key in a:
            assert torch.equal(a[key], b[key])
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    set_rng_state(loaded["rng"][0])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert expected[:2] == got[:2] and torch.equal(expected[2], got[2])
    # and it really is loadable without unpickling arbitrary objects
    torch.load(checkpoint_paths(tmp_path, 1)[1], weights_only=True)


def test_failed_write_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
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


def test_keep_last_prunes_and_incomplete_checkpoints_are_ignored(tmp_path: Path) -> None:
    model = _model()
    for step in (2, 4, 6, 8):
        save_checkpoint(tmp_path, step, model, {"step": step}, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [6, 8]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_00000006.safetensors", "step_00000006.state.pt", "step_00000008.safetensors", "step_00000008.state.pt"]
    # a run killed between the two files of step 10 leaves an orphan state file: not a checkpoint
    torch.save({"step": 10}, checkpoint_paths(tmp_path, 10)[1])
    assert latest_checkpoint(tmp_path) == checkpoint_paths(tmp_path, 8)[0]
    # load_model on a run directory: best.safetensors if present, else the latest checkpoint
    assert load_model(tmp_path)[1]["step"] == 8
    save_weights(model, tmp_path / "best.safetensors", {"step": 6, "valid_loss": 1.5})
    assert load_model(tmp_path)[1]["step"] == 6
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nothing")


def test_rejects_foreign_safetensors(tmp_path: Path) -> None:
    safetensors.torch.save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a transformer weights file"):
        load_model(tmp_path / "other.safetensors")
