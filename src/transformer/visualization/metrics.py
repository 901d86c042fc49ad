"""Training curves from a run's ``metrics.jsonl``: loss, validation BLEU and learning rate over steps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

# (panel title, y label, [(record key, line label)])
_METRIC_PANELS = (
    ("Loss", "loss", [("loss", "train loss"), ("valid_loss", "valid loss")]),
    ("Validation BLEU", "BLEU", [("valid_bleu", "valid BLEU")]),
    ("Learning rate", "learning rate", [("lr", "lr")]),
)


def load_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (one JSON object per line; blank lines skipped).

    Args:
        path: the file, or a run directory holding ``metrics.jsonl``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not a JSON object; the message names the file and line.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics file there")
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of the records that have both a step and this key, in file order."""
    steps, values = [], []
    for i, record in enumerate(records):
        value, step = record.get(key), record.get("step")
        if value is None or step is None:
            continue
        for name, v in (("step", step), (key, value)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"metrics record {i}: {name}={v!r} is not a number")
        steps.append(step)
        values.append(value)
    return steps, values


def plot_metrics(records: Sequence[dict[str, Any]], title: str | None = None) -> Figure:
    """Training curves over steps: loss (train and valid), validation BLEU and learning rate.

    Panels share the step axis; a panel whose metrics appear in no record is left out. Records are
    ``metrics.jsonl`` lines (``load_metrics``); a record needs ``step`` to be drawn, other keys are
    optional and unknown keys are ignored.

    Raises:
        ValueError: no record has a step and any of loss, valid_loss, valid_bleu or lr.
    """
    panels = []
    for panel_title, ylabel, keys in _METRIC_PANELS:
        lines = [(label, *_series(records, key)) for key, label in keys]
        lines = [line for line in lines if line[1]]
        if lines:
            panels.append((panel_title, ylabel, lines))
    if not panels:
        raise ValueError("nothing to plot: no record has a step and any of loss, valid_loss, valid_bleu, lr")
    fig = Figure(figsize=(9, 2.6 * len(panels) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (panel_title, ylabel, lines) in zip(axes, panels):
        for label, steps, values in lines:
            sparse = label.startswith("valid")  # validation runs every few hundred steps: show the points
            ax.plot(steps, values, label=label, marker="o" if sparse else None, ms=3)
        ax.set(title=panel_title, ylabel=ylabel)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("step")
    if panels[-1][0] == "Learning rate":
        axes[-1].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))  # 1e-4 rather than 0.0001
    if title:
        fig.suptitle(title)
    return fig
