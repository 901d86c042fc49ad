"""Training checkpoints: weights-only training state with every RNG, pruning, incomplete checkpoints, and the
run directory's layout (``transformer.run_dir``)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from transformer import Transformer
from transformer.checkpoint import CheckpointError, save_weights
from transformer.run_dir import checkpoint_paths, latest_checkpoint, list_checkpoints, load_model
from transformer.training.checkpoint import load_training_state, save_checkpoint
from transformer.training.rng import rng_state, set_rng_state

SMALL = dict(n_encoder_layers=1, n_decoder_layers=1)  # of the tests' TINY config (conftest)


@pytest.fixture
def make_model(make_cfg):
    """``make_model(**changes)``: a one-layer model of the tests' config."""
    return lambda **changes: Transformer(make_cfg(**{**SMALL, **changes}))


def test_training_state_is_weights_only_and_complete(tmp_path: Path, make_model) -> None:
    model = make_model()
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
    opt2 = torch.optim.Adam(make_model().parameters(), lr=1e-3)
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


def test_keep_last_prunes_and_incomplete_checkpoints_are_ignored(tmp_path: Path, make_model) -> None:
    model = make_model()
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


def test_a_damaged_training_state_is_one_clear_error_naming_it(tmp_path: Path, make_model) -> None:
    path = save_checkpoint(tmp_path, 5, make_model(), {"step": 5, "x": torch.zeros(1000)}, keep_last=2)
    state_file = checkpoint_paths(tmp_path, 5)[1]
    state_file.write_bytes(state_file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupted") as info:
        load_training_state(path)
    assert str(info.value).startswith(f"{state_file}: ") and "\n" not in str(info.value)
