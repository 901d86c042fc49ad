"""Model weights on disk: one safetensors file holding the tensors and, in its metadata, the model's config.

safetensors refuses tensors that share memory (tied embeddings): each tensor is stored once, under its first
name, and the metadata maps the other names to it (``aliases``); loading rebuilds the model from its config,
which re-ties the weights. Writes are atomic (``transformer.io``). A file that cannot be used (truncated,
corrupted, another format, tensors that do not fit its config) raises ``CheckpointError``, one line naming
the file and what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .config import TransformerConfig
from .io import atomic_write
from .model import Transformer

FORMAT = "transformer-weights/1"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded; the message names the file and says what is wrong."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


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
    """A weights file's metadata, JSON-decoded: ``config`` (dict), ``aliases``, ``step``, ...

    Raises:
        CheckpointError: the file is missing, not safetensors (truncated or corrupted), or not ours.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(path, "no such file") from None
    except (SafetensorError, OSError) as e:
        raise CheckpointError(path, f"not a readable safetensors file, truncated or corrupted ({e})") from None
    if raw.get("format") != FORMAT:
        raise CheckpointError(path, f"not a transformer weights file (metadata format {raw.get('format')!r})")
    try:
        meta = {key: json.loads(value) for key, value in raw.items() if key != "format"}
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"corrupted metadata: {e}") from None
    if not isinstance(meta.get("config"), dict) or not isinstance(meta.get("aliases"), dict):
        raise CheckpointError(path, "corrupted metadata: no model config or tie aliases")
    return meta


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors stored in a weights file, by name (ties not restored: see ``aliases``)."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(path, f"not a readable safetensors file, truncated or corrupted ({e})") from None


def read_config(path: Path) -> TransformerConfig:
    """The model config stored in a weights file (CheckpointError when it is not a valid one)."""
    try:
        return TransformerConfig.from_dict(read_metadata(path)["config"])
    except (TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(path, f"its model config is not valid: {e}") from None


def load_weights(path: Path, device: str | torch.device = "cpu") -> tuple[Transformer, dict[str, Any]]:
    """Rebuild the model stored at ``path`` (ties restored), in eval mode, with its metadata."""
    model = Transformer(read_config(path))
    meta = load_weights_into(model, path)
    return model.to(device).eval(), meta


def load_weights_into(model: Transformer, path: Path) -> dict[str, Any]:
    """Copy the weights stored at ``path`` into ``model`` (built from the same config); returns the metadata."""
    meta = read_metadata(path)
    stored = read_config(path)  # fields that files of earlier versions lack take their defaults
    if stored != model.cfg:
        ours = model.cfg.to_dict()
        differ = {k: (v, ours[k]) for k, v in stored.to_dict().items() if ours[k] != v}
        raise CheckpointError(path, f"holds a model with another config (stored, expected): {differ}")
    state = read_tensors(path)
    for alias, name in meta["aliases"].items():
        if name not in state:
            raise CheckpointError(path, f"corrupted: the tie {alias} -> {name} names a tensor it does not hold")
        state[alias] = state[name]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        summary = " ".join(str(e).split())
        raise CheckpointError(path, f"its tensors do not fit its model config: {summary[:300]}") from None
    return meta
