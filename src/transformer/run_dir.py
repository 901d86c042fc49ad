"""The run directory: what ``transformer train`` writes, and what every other command reads.

Layout::

    RUN/config.toml                              the resolved run config (``transformer.run_config``)
    RUN/vocab/                                   the data's vocabularies: RUN alone is enough to translate
    RUN/checkpoints/step_00001000.safetensors    model weights (``transformer.checkpoint``), metadata: config, step
    RUN/checkpoints/step_00001000.state.pt       optimizer, data position, RNG states (``training.checkpoint``)
    RUN/best.safetensors                         the weights with the best validation score
    RUN/metrics.jsonl                            one JSON object per logged step

A step's checkpoint is complete when both of its files exist; the state file is written first, so a run killed
in between leaves an orphan state file that ``latest_checkpoint`` ignores.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_weights
from .model import Transformer

CONFIG = "config.toml"
VOCAB = "vocab"
CHECKPOINTS = "checkpoints"
BEST = "best.safetensors"
_STEP_FILE = re.compile(r"step_(\d{8,})\.safetensors")


def checkpoint_paths(run_dir: Path, step: int) -> tuple[Path, Path]:
    """(weights, training state) file names of ``step``'s checkpoint."""
    base = Path(run_dir) / CHECKPOINTS / f"step_{step:08d}"
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".state.pt")


def state_path(weights_path: Path) -> Path:
    """The training state file beside a checkpoint's weights."""
    return weights_path.with_name(weights_path.name.replace(".safetensors", ".state.pt"))


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (weights and state both written) as (step, weights path), oldest first."""
    directory = Path(run_dir) / CHECKPOINTS
    found = []
    for path in directory.glob("step_*.safetensors") if directory.is_dir() else []:
        match = _STEP_FILE.fullmatch(path.name)
        if match and state_path(path).exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The weights file of the newest complete checkpoint, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def weights_of(path: Path | str) -> Path:
    """The weights file a path means: a run directory's ``best.safetensors``, else its latest checkpoint; a file
    as it is.

    Raises:
        FileNotFoundError: no such path, or a run directory with no weights yet.
    """
    path = Path(path)
    if path.is_dir():
        chosen = path / BEST if (path / BEST).exists() else latest_checkpoint(path)
        if chosen is None:
            raise FileNotFoundError(f"{path} has neither {BEST} nor a complete checkpoint in {CHECKPOINTS}/")
        return chosen
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint or run directory")
    return path


def load_model(path: Path | str, device: str | torch.device = "cpu") -> tuple[Transformer, dict[str, Any]]:
    """A trained model, in eval mode, and its metadata, from a weights file or a run directory (``weights_of``).

    Raises:
        FileNotFoundError: see ``weights_of``.
        CheckpointError: the weights file cannot be loaded (truncated, corrupted, not ours).
    """
    return load_weights(weights_of(path), device)


def run_dir_of(path: Path | str) -> Path:
    """The run directory of a run directory or of a weights file inside one: the nearest with ``vocab/``."""
    path = Path(path)
    for candidate in (path, *path.parents) if path.is_dir() else path.parents:
        if (candidate / VOCAB).is_dir():
            return candidate
    raise FileNotFoundError(f"{path}: no {VOCAB}/ directory found beside it or above it")


def copy_vocab(data_dir: Path, run_dir: Path) -> None:
    """Copy ``data_dir/vocab/`` into ``run_dir/vocab/`` so the run directory is enough to translate."""
    source = Path(data_dir) / VOCAB
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist: run `transformer prepare` first")
    shutil.copytree(source, Path(run_dir) / VOCAB, dirs_exist_ok=True)
