"""The training record: ``RUN/metrics.jsonl`` (one JSON object per line), and TensorBoard when it is installed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..io import atomic_write

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete record of ``RUN/metrics.jsonl`` (a line cut short by a crash is skipped)."""
    path = Path(run_dir) / METRICS
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """Appends records to ``RUN/metrics.jsonl`` and mirrors their numbers to TensorBoard (``RUN/tensorboard``).

    Opening it keeps only the records up to ``from_step``: after a resume the steps that the checkpoint does
    not contain are recorded again, not twice. A disabled log (ranks other than 0) writes nothing.
    """

    def __init__(self, run_dir: Path, from_step: int, enabled: bool = True) -> None:
        self.path = Path(run_dir) / METRICS
        self.enabled = enabled
        self._tensorboard = None
        if not enabled:
            return
        kept = "".join(json.dumps(r) + "\n" for r in read_metrics(run_dir) if r.get("step", 0) <= from_step)
        atomic_write(self.path, lambda tmp: tmp.write_text(kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=from_step + 1)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (it must have a ``step``)."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
