"""Training checkpoints: a step's weights (``transformer.checkpoint``) and its training state, a weights-only
``.pt`` (optimizer, step, epoch, batch position, best score, RNG states), written atomically, state first
(the layout: ``transformer.run_dir``); old ones pruned.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import CheckpointError, save_weights
from ..io import atomic_write
from ..model import Transformer
from ..run_dir import CHECKPOINTS, checkpoint_paths, list_checkpoints, state_path


def save_checkpoint(
    run_dir: Path, step: int, model: Transformer, state: dict[str, Any], keep_last: int,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``step``'s training state, then its weights, then delete all but the newest ``keep_last``."""
    weights_path, state_file = checkpoint_paths(run_dir, step)
    atomic_write(state_file, lambda tmp: torch.save(state, tmp))
    save_weights(model, weights_path, {"step": step, **(metadata or {})})
    prune_checkpoints(run_dir, keep_last)
    return weights_path


def load_training_state(weights_path: Path) -> dict[str, Any]:
    """The ``.state.pt`` beside a checkpoint's weights; only tensors and plain containers are unpickled.

    Raises:
        CheckpointError: the file is missing, truncated or corrupted.
    """
    path = state_path(weights_path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        reason = " ".join(str(e).split())[:200]
        raise CheckpointError(path, f"not a readable training state, truncated or corrupted ({reason})") from None


def prune_checkpoints(run_dir: Path, keep_last: int) -> None:
    """Delete the files of every checkpoint older than the newest ``keep_last`` complete ones."""
    found = list_checkpoints(run_dir)
    if len(found) <= keep_last:
        return
    oldest_kept = found[-keep_last][0] if keep_last > 0 else found[-1][0] + 1
    for path in (Path(run_dir) / CHECKPOINTS).glob("step_*"):
        match = re.match(r"step_(\d{8,})\.", path.name)
        if match and int(match.group(1)) < oldest_kept:
            path.unlink(missing_ok=True)
