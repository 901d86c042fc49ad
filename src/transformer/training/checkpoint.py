"""Checkpoints: weights in safetensors, training state in a weights-only ``.pt``, every write atomic.

Run directory layout::

    RUN/config.toml                              the resolved RunConfig (``transformer train --resume`` reads it)
    RUN/vocab/                                   copy of the data's vocabularies: RUN alone is enough to translate
    RUN/checkpoints/step_00001000.safetensors    model weights; metadata: TransformerConfig JSON, step, ...
    RUN/checkpoints/step_00001000.state.pt       optimizer, step, epoch, batch position, best score, RNG states
    RUN/best.safetensors                         the weights with the best validation score
    RUN/metrics.jsonl                            one JSON object per logged step

A step's checkpoint is complete when both of its files exist; the state file is written first, so a run killed
in between leaves an orphan state file that ``latest_checkpoint`` ignores. safetensors refuses tensors that
share memory (tied embeddings): each tensor is stored once, under its first name, and the metadata maps the
other names to it (``aliases``); loading rebuilds the model from its config, which re-ties the weights.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..config import TransformerConfig
from ..model import Transformer

log = logging.getLogger(__name__)

FORMAT = "transformer-weights/1"
CHECKPOINTS = "checkpoints"
BEST = "best.safetensors"
_STEP_FILE = re.compile(r"step_(\d{8,})\.safetensors")


# -- atomic files -------------------------------------------------------------------------------------


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    Readers see the old file or the new one, never a partial one; if ``write`` fails, ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- weights ------------------------------------------------------------------------------------------


def unique_state_dict(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The state dict with every shared tensor kept once: (tensors, {alias name: stored name})."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in model.state_dict().items():
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if key in seen:
            aliases[name] = seen[key]
        else:
            seen[key] = name
            tensors[name] = t.detach().contiguous()
    return tensors, aliases


def save_weights(model: Transformer, path: Path, metadata: dict[str, Any] | None = None) -> None:
    """Write the model's weights and config (plus JSON-able ``metadata``, e.g. the step) atomically."""
    tensors, aliases = unique_state_dict(model)
    write_weights(path, tensors, model.cfg.to_dict(), aliases, metadata)


def write_weights(
    path: Path, tensors: dict[str, torch.Tensor], config: dict[str, Any], aliases: dict[str, str],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Write unique ``tensors`` with the model ``config`` and tie ``aliases`` (see ``unique_state_dict``)."""
    meta = {key: json.dumps(value) for key, value in (metadata or {}).items()}
    meta.update(format=FORMAT, config=json.dumps(config), aliases=json.dumps(aliases))
    tensors = {name: t.cpu() for name, t in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_metadata(path: Path) -> dict[str, Any]:
    """A weights file's metadata, JSON-decoded: ``config`` (dict), ``aliases``, ``step``, ..."""
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path} is not a transformer weights file (metadata format {raw.get('format')!r})")
    return {key: json.loads(value) for key, value in raw.items() if key != "format"}


def load_weights(path: Path, device: str | torch.device = "cpu") -> tuple[Transformer, dict[str, Any]]:
    """Rebuild the model stored at ``path`` (ties restored), in eval mode, with its metadata."""
    model = Transformer(TransformerConfig.from_dict(read_metadata(path)["config"]))
    meta = load_weights_into(model, path)
    return model.to(device).eval(), meta


def load_weights_into(model: Transformer, path: Path) -> dict[str, Any]:
    """Copy the weights stored at ``path`` into ``model`` (built from the same config); returns the metadata."""
    meta = read_metadata(path)
    if meta["config"] != model.cfg.to_dict():
        raise ValueError(f"{path} holds a model with another config: {meta['config']} != {model.cfg.to_dict()}")
    state = load_file(str(path))
    for alias, name in meta["aliases"].items():
        state[alias] = state[name]
    model.load_state_dict(state, strict=True)
    return meta


def load_model(path: Path | str, device: str | torch.device = "cpu") -> tuple[Transformer, dict[str, Any]]:
    """A trained model, in eval mode, and its metadata, from a weights file or a run directory.

    A run directory gives its ``best.safetensors`` if there is one, else its latest checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        best = path / BEST
        chosen = best if best.exists() else latest_checkpoint(path)
        if chosen is None:
            raise FileNotFoundError(f"{path} has neither {BEST} nor a complete checkpoint in {CHECKPOINTS}/")
        path = chosen
    elif not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    return load_weights(path, device)


# -- step checkpoints ---------------------------------------------------------------------------------


def checkpoint_paths(run_dir: Path, step: int) -> tuple[Path, Path]:
    """(weights, training state) file names of ``step``'s checkpoint."""
    base = Path(run_dir) / CHECKPOINTS / f"step_{step:08d}"
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".state.pt")


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (weights and state both written) as (step, weights path), oldest first."""
    directory = Path(run_dir) / CHECKPOINTS
    found = []
    for path in directory.glob("step_*.safetensors") if directory.is_dir() else []:
        match = _STEP_FILE.fullmatch(path.name)
        if match and checkpoint_paths(run_dir, int(match.group(1)))[1].exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The weights file of the newest complete checkpoint, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    run_dir: Path, step: int, model: Transformer, state: dict[str, Any], keep_last: int,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``step``'s training state, then its weights, then delete all but the newest ``keep_last``."""
    weights_path, state_path = checkpoint_paths(run_dir, step)
    atomic_write(state_path, lambda tmp: torch.save(state, tmp))
    save_weights(model, weights_path, {"step": step, **(metadata or {})})
    prune_checkpoints(run_dir, keep_last)
    return weights_path


def load_training_state(weights_path: Path) -> dict[str, Any]:
    """The ``.state.pt`` beside a checkpoint's weights; only tensors and plain containers are unpickled."""
    state_path = weights_path.with_name(weights_path.name.replace(".safetensors", ".state.pt"))
    return torch.load(state_path, map_location="cpu", weights_only=True)


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


# -- random number generators -------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and torch's (CPU and CUDA) generators, as tensors and plain values."""
    version, keys, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss},
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Undo ``rng_state``: every generator continues where it was."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(k) for k in py["keys"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the run directory --------------------------------------------------------------------------------


def copy_vocab(data_dir: Path, run_dir: Path) -> None:
    """Copy ``data_dir/vocab/`` into ``run_dir/vocab/`` so the run directory is enough to translate."""
    source = Path(data_dir) / "vocab"
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist: run `transformer prepare` first")
    shutil.copytree(source, Path(run_dir) / "vocab", dirs_exist_ok=True)
