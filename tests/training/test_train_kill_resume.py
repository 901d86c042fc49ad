"""Exact resume for real: a training process killed with SIGKILL, then resumed, ends bit for bit where an
uninterrupted run ends."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

from transformer.run_dir import latest_checkpoint, list_checkpoints, load_model
from transformer.training.checkpoint import load_training_state

STEPS = 50


def _args(overrides: list[str], run_dir: Path) -> list[str]:
    # a slower model than the other tests' so that the kill lands well before the end
    extra = ["model.d_model=64", "model.n_heads=4", "model.d_ff=128", "model.n_encoder_layers=2",
             "model.n_decoder_layers=2", f"train.max_steps={STEPS}", "train.save_every=5", "train.eval_every=10",
             "train.keep_last=3", "data.max_tokens=256"]
    sets = [item for value in overrides + extra for item in ("--set", value)]
    return ["train", "--run-dir", str(run_dir), *sets]


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path: Path, overrides, run_cli, spawn_cli) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = run_cli(_args(overrides(), full))
    assert done.returncode == 0, done.stderr

    proc = spawn_cli(_args(overrides(), killed))
    deadline = time.monotonic() + 120
    try:
        while not list_checkpoints(killed) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is not None:
            pytest.fail(f"training ended (code {proc.returncode}) before it could be killed:\n{proc.stdout.read()}")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    interrupted_at = list_checkpoints(killed)[-1][0]
    assert 5 <= interrupted_at < STEPS

    resumed = run_cli(["train", "--run-dir", str(killed), "--resume"])  # reads killed/config.toml
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {killed / 'checkpoints'}" in resumed.stderr

    a, meta_a = load_model(latest_checkpoint(full))
    b, meta_b = load_model(latest_checkpoint(killed))
    assert meta_a["step"] == meta_b["step"] == STEPS
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    # the optimizer moments and the data position agree too
    state_a, state_b = load_training_state(latest_checkpoint(full)), load_training_state(latest_checkpoint(killed))
    wall_a, wall_b = state_a["progress"].pop("elapsed_s"), state_b["progress"].pop("elapsed_s")
    assert state_a["progress"] == state_b["progress"]  # everything but the wall clock
    assert wall_a > 0 and wall_b > 0
    for sa, sb in zip(state_a["optimizer"]["state"].values(), state_b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    best_a, best_b = load_model(full / "best.safetensors"), load_model(killed / "best.safetensors")
    assert best_a[1] == best_b[1]
