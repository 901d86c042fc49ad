"""Run configuration: what to train on, how, and how to decode, read from one TOML file.

A run file has four sections, each optional::

    [model]    # Architecture: TransformerConfig's fields but the vocabulary's (sizes, special ids)
    [data]     # DataConfig
    [train]    # TrainConfig
    [decode]   # DecodeOptions

``load_config(path, ["train.max_steps=100"])`` reads it, applies ``section.field=value`` overrides and checks
every value against the dataclass field types; ``save_config`` writes the resolved config back so that loading
it gives the same ``RunConfig``. TOML has no null: a field that may be None always defaults to None, so
leaving it out of the file means None (and an override may say ``none``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the ``tomli`` package
    import tomli as tomllib  # type: ignore[no-redef]

from .config import Architecture, TransformerConfig
from .decoding.options import DecodeOptionError, DecodeOptions

# Filled in from the vocabulary at train time, so a run file cannot set them.
VOCAB_FIELDS = tuple(f.name for f in dataclasses.fields(TransformerConfig) if f.name not in
                     {g.name for g in dataclasses.fields(Architecture)})
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(Architecture))


@dataclass(frozen=True, slots=True)
class DataConfig:
    """Where the prepared corpus is (``transformer prepare``'s output) and how it is batched."""

    dir: str = "data"  # holds train/valid encoded splits and vocab/
    max_tokens: int = 4096  # tokens per batch, per process and per accumulation step
    valid_max_tokens: int | None = None  # None: max_tokens

    def __post_init__(self) -> None:
        _check_positive(self, "max_tokens", "valid_max_tokens")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """The optimisation recipe of §5 and the run's bookkeeping."""

    seed: int = 0
    max_steps: int = 100_000  # optimizer updates (§5.2: 100k for base, 300k for big)
    max_epochs: int | None = None  # also stop after this many passes over the data
    max_minutes: float | None = None  # also stop after this much wall-clock time (validation included)
    warmup: int = 4000  # warmup_steps of the learning-rate formula (§5.3)
    lr_scale: float = 1.0  # multiplies the formula's learning rate
    decay_steps: int = 0  # the last decay_steps updates before max_steps scale it linearly down to ~0; 0: none
    betas: tuple[float, float] = (0.9, 0.98)  # Adam, §5.3
    eps: float = 1e-9
    label_smoothing: float = 0.1  # epsilon_ls, §5.4
    accumulate: int = 1  # batches per optimizer update (the paper's 25k tokens on fewer GPUs)
    clip_norm: float | None = None  # max gradient L2 norm; None: no clipping (the paper has none)
    bf16: bool = False  # bfloat16 autocast
    compile: bool = False  # torch.compile the model
    recompute: bool = False  # activation checkpointing: far less memory, about a third more compute
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    threads: int | None = None  # CPU threads of torch's operators; None: torch's default (one per core)
    log_every: int = 100  # steps between log lines and metrics.jsonl records
    eval_every: int = 1000  # steps between validations (loss, perplexity, BLEU)
    save_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_last: int = 5  # step checkpoints kept on disk (the paper averages the last 5 / 20)
    patience: int | None = None  # stop after this many validations without improvement; None: never
    best_metric: str = "loss"  # "loss" or "bleu": which validation score picks best.safetensors
    valid_bleu_sentences: int | None = None  # validation sentences translated for BLEU; 0: no BLEU, None: all
    valid_beam_size: int = 1  # 1: greedy decoding for validation BLEU
    loss_chunk_size: int = 4096  # target positions per output-projection chunk; 0: all at once
    compile_loss: bool = False  # torch.compile the loss's softmax and gradient (faster; needs a C++ compiler)
    init_from: str | None = None  # start from this run's weights (fine-tuning: `train --init-from`); None: random

    def __post_init__(self) -> None:
        _check_positive(self, "max_steps", "max_epochs", "warmup", "accumulate", "log_every", "eval_every",
                        "save_every", "keep_last", "patience", "valid_beam_size", "threads")
        _check_positive(self, "lr_scale", "eps", "clip_norm", "max_minutes")
        if not 0 <= self.decay_steps <= self.max_steps:
            raise ValueError(f"train.decay_steps={self.decay_steps} must be in [0, train.max_steps={self.max_steps}]")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"train.label_smoothing={self.label_smoothing} must be in [0, 1)")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas={self.betas} must both be in [0, 1)")
        if self.best_metric not in ("loss", "bleu"):
            raise ValueError(f"train.best_metric={self.best_metric!r} must be 'loss' or 'bleu'")
        if self.best_metric == "bleu" and self.valid_bleu_sentences == 0:
            raise ValueError("train.best_metric='bleu' needs train.valid_bleu_sentences > 0 (or unset: all)")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"train.device={self.device!r} must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.valid_bleu_sentences is not None and self.valid_bleu_sentences < 0:
            raise ValueError(f"train.valid_bleu_sentences={self.valid_bleu_sentences} must be >= 0")
        if self.loss_chunk_size < 0:
            raise ValueError(f"train.loss_chunk_size={self.loss_chunk_size} must be >= 0")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a ``transformer train`` run needs."""

    model: Architecture = field(default_factory=Architecture)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeOptions = field(default_factory=DecodeOptions)

    def model_config(self, src_vocab_size: int, tgt_vocab_size: int, pad_id: int, bos_id: int,
                     eos_id: int) -> TransformerConfig:
        """The TransformerConfig of ``model`` with the vocabulary's sizes and special ids filled in."""
        return TransformerConfig.of(self.model, src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size,
                                    pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)


SECTIONS: dict[str, type] = {"data": DataConfig, "train": TrainConfig, "decode": DecodeOptions}


def load_config(path: Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a run file (or the defaults when ``path`` is None) and apply ``section.field=value`` overrides.

    Raises ValueError naming the offending section, field or value (and the valid choices).
    """
    raw: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            try:
                raw = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML: {e}") from None
    sections: dict[str, dict[str, Any]] = {name: {} for name in ("model", *SECTIONS)}
    for name, values in raw.items():
        _check_section(name)
        if not isinstance(values, dict):
            raise ValueError(f"[{name}] must be a table of settings, got {values!r}")
        sections[name].update(values)
    for item in overrides:
        section, name, value = _split_override(item)
        sections[section][name] = _parse_scalar(value)
    return RunConfig(
        model=_resolve_model(sections["model"]),
        **{name: _build(cls, name, sections[name]) for name, cls in SECTIONS.items()},
    )


def save_config(cfg: RunConfig, path: Path) -> None:
    """Write ``cfg`` as TOML (fields that are None left out: they default to None)."""
    import tomli_w

    doc = {"model": {k: v for k, v in cfg.model.to_dict().items() if v is not None}}
    for name in SECTIONS:
        values = dataclasses.asdict(getattr(cfg, name))
        doc[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if v is not None}
    Path(path).write_text(tomli_w.dumps(doc))


# -- parsing and type checking ----------------------------------------------------------------------


def _check_section(name: str) -> None:
    if name not in ("model", *SECTIONS):
        raise ValueError(f"unknown config section [{name}]: valid sections are {', '.join(['model', *SECTIONS])}")


def _split_override(item: str) -> tuple[str, str, str]:
    key, sep, value = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ValueError(f"override {item!r} must look like section.field=value, e.g. train.max_steps=100")
    _check_section(section)
    return section, name, value.strip()


def _parse_scalar(text: str) -> Any:
    """An override's value as TOML would read it (``3``, ``0.1``, ``true``, ``[0.9, 0.98]``, ``"x"``), a bare
    word as a string, and ``none``/``null`` as None."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _resolve_model(values: dict[str, Any]) -> Architecture:
    hints = typing.get_type_hints(Architecture)
    model = {}
    for name, value in values.items():
        if name in VOCAB_FIELDS:
            raise ValueError(f"model.{name} comes from the vocabulary and cannot be set in a run config")
        if name not in hints:
            raise ValueError(f"unknown field model.{name}: valid fields of [model] are {', '.join(MODEL_FIELDS)}")
        model[name] = _coerce(value, hints[name], f"model.{name}")
    try:  # the architecture's own checks (d_model % n_heads, ...)
        return Architecture(**model)
    except ValueError as e:
        raise ValueError(f"[model]: {e}") from None


def _build(cls: type, section: str, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        if name not in hints:
            raise ValueError(f"unknown field {section}.{name}: valid fields of [{section}] are {', '.join(fields)}")
        kwargs[name] = _coerce(value, hints[name], f"{section}.{name}")
    try:
        return cls(**kwargs)
    except DecodeOptionError as e:
        raise ValueError(f"{section}.{e}") from None


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """``value`` as type ``typ`` (int, float, bool, str, tuple[X, ...], X | None), or a ValueError."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or (args[-1] is not Ellipsis and len(value) != len(args)):
            raise ValueError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        item_types = [args[0]] * len(value) if args[-1] is Ellipsis else args
        return tuple(_coerce(v, t, where) for v, t in zip(value, item_types))
    if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if typ in (int, bool, str) and type(value) is typ:
        return value
    raise ValueError(f"{where}: expected {getattr(typ, '__name__', typ)}, got {value!r}")


def _check_positive(obj: Any, *names: str) -> None:
    section = {DataConfig: "data", TrainConfig: "train"}[type(obj)]
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise ValueError(f"{section}.{name}={value} must be > 0")
