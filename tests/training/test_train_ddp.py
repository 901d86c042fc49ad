"""Data parallelism: 2 processes (torchrun, Gloo on CPU) x accumulate k == 1 process x accumulate 2k."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from transformer.run_dir import latest_checkpoint, load_model
from transformer.training.loop import train
from transformer.training.metrics import read_metrics


def test_two_processes_match_one_process_with_twice_the_accumulation(tmp_path: Path, overrides, make_config) -> None:
    # Adam with the paper's eps=1e-9 turns rounding noise into full-size steps wherever the true gradient is
    # zero (the attention key biases: softmax ignores a constant added to every score), so the comparison
    # uses eps=1e-6; no dropout, since each rank draws its own masks.
    common = ["model.dropout=0.0", "train.eps=1e-6", "train.max_steps=3", "train.eval_every=3", "train.save_every=3",
              "train.log_every=1"]
    sets = [item for value in overrides(*common, "train.accumulate=2") for item in ("--set", value)]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "transformer", "train", "--run-dir", str(tmp_path / "ddp"), *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(launch, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cpu x 2" in done.stderr  # both processes took part

    train(make_config(*common, "train.accumulate=4"), tmp_path / "single")

    ddp, ddp_meta = load_model(latest_checkpoint(tmp_path / "ddp"))
    single, single_meta = load_model(latest_checkpoint(tmp_path / "single"))
    assert ddp_meta["step"] == single_meta["step"] == 3
    for (name, a), b in zip(ddp.state_dict().items(), single.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=name)
    # the same loss was logged: token counts were summed over the processes before normalising
    for a, b in zip(read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")):
        assert a["step"] == b["step"]
        for key in ("loss", "valid_loss", "valid_nll"):
            if key in a:
                assert abs(a[key] - b[key]) < 1e-5, (key, a, b)
    # only rank 0 wrote: one metrics line per event
    assert [r["step"] for r in read_metrics(tmp_path / "ddp") if "loss" in r] == [1, 2, 3]
