"""Checkpoint averaging (§6.1: "averaging the last 5 checkpoints, which were written at 10-minute intervals")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..checkpoint import read_config, read_metadata, read_tensors, write_weights
from ..run_dir import list_checkpoints

log = logging.getLogger(__name__)


def last_checkpoints(run_dir: Path, n: int) -> list[Path]:
    """The weights files of the newest ``n`` complete checkpoints of a run, oldest first."""
    if n < 1:
        raise ValueError(f"need n >= 1 checkpoints to average, got {n}")
    found = [path for _, path in list_checkpoints(run_dir)]
    if len(found) < n:
        raise ValueError(f"{run_dir} has {len(found)} complete checkpoints, fewer than the {n} asked for")
    return found[-n:]


def average_checkpoints(paths: Sequence[Path], out: Path) -> Path:
    """Write the element-wise mean of the weights in ``paths`` (all of one model config) to ``out``.

    Floating-point tensors are summed in float64 and stored in their own dtype; any other tensor must be the
    same in every file. The metadata is the last file's, plus ``averaged``: the input files.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    metas = [read_metadata(p) for p in paths]
    configs = [read_config(p) for p in paths]  # compared with defaults filled in: files of earlier versions too
    for path, meta, config in zip(paths[1:], metas[1:], configs[1:]):
        if config != configs[0] or meta["aliases"] != metas[0]["aliases"]:
            raise ValueError(f"{path} holds another model than {paths[0]}: cannot average them")
    sums: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        for name, tensor in read_tensors(path).items():
            if name not in sums:
                dtypes[name] = tensor.dtype
                sums[name] = tensor.double() if tensor.is_floating_point() else tensor
            elif tensor.is_floating_point():
                sums[name] += tensor.double()
            elif not torch.equal(sums[name], tensor):
                raise ValueError(f"{path}: tensor {name} is not floating-point and differs between checkpoints")
    mean = {name: (t / len(paths)).to(dtypes[name]) if t.is_floating_point() else t for name, t in sums.items()}
    last = metas[-1]
    extra = {k: v for k, v in last.items() if k not in ("config", "aliases")}
    write_weights(out, mean, last["config"], last["aliases"], {**extra, "averaged": [str(p) for p in paths]})
    log.info("averaged %d checkpoints into %s", len(paths), out)
    return Path(out)
