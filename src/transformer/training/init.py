"""Fine-tuning: a run that starts from another run's weights (``transformer train --init-from RUN``).

The new run takes the model of RUN (its ``[model]``, read from its weights), with the dropout rates the user
sets (the only fields that fit the same weights; any other ``--set model.*`` that differs is warned about and
left as RUN has it), and starts from RUN's weights with a fresh optimizer. Its data must be encoded with RUN's
vocabulary: ``transformer prepare --vocab-from RUN``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from ..checkpoint import CheckpointError, read_config, read_metadata, read_tensors
from ..model import Transformer
from ..run_config import RunConfig
from ..run_dir import weights_of

log = logging.getLogger(__name__)

FITS_THE_WEIGHTS = ("dropout", "attention_dropout", "activation_dropout")


def with_initial_model(cfg: RunConfig, init_from: str | Path, explicit: set[str]) -> RunConfig:
    """``cfg`` with the model of the run ``init_from`` (and ``train.init_from`` set): of the ``[model]`` fields the
    user gave (``explicit``), those in ``FITS_THE_WEIGHTS`` are kept; others that differ are warned about.

    Raises:
        FileNotFoundError: no such run or weights file.
        CheckpointError: its weights file cannot be read.
    """
    path = weights_of(init_from)
    architecture = read_config(path).architecture
    changes = {}
    for name in sorted(explicit):
        ours, theirs = getattr(cfg.model, name), getattr(architecture, name)
        if ours == theirs:
            continue
        if name in FITS_THE_WEIGHTS:
            changes[name] = ours
        else:
            log.warning("model.%s=%r would not fit the weights of %s: the model keeps its %s=%r", name, ours, path,
                        name, theirs)
    train = dataclasses.replace(cfg.train, init_from=str(init_from))
    return dataclasses.replace(cfg, model=dataclasses.replace(architecture, **changes), train=train)


def load_initial_weights(model: Transformer, init_from: str | Path) -> Path:
    """Copy the weights of the run (or weights file) ``init_from`` into ``model``; the file loaded.

    Raises:
        CheckpointError: the weights do not fit the model (another architecture, or data encoded with another
            vocabulary than that run's), naming the file.
    """
    path = weights_of(init_from)
    meta, state = read_metadata(path), read_tensors(path)
    for alias, name in meta["aliases"].items():
        state[alias] = state[name]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        summary = " ".join(str(e).split())[:300]
        raise CheckpointError(path, f"its weights do not fit this run's model (was the data prepared with "
                                    f"--vocab-from {init_from}?): {summary}") from None
    log.info("starting from the weights of %s", path)
    return path
