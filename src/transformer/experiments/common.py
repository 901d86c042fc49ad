"""What every experiment has: a ``Context`` to run in (where to write, which seeds, quick or not, progress) and a
``Result`` to give back (the claim, the setup, a table, the figures, every number, a one-sentence verdict).

Training results come from several seeds; ``spread`` gives their mean and spread, and ``differs`` says whether
two of them differ by more than that spread (a difference within it is called that).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@dataclass
class Context:
    """Where an experiment writes (``out``: DIR/NAME), its ``seeds``, ``quick`` (seconds, for tests) and a
    ``progress(message)`` callback."""

    out: Path
    seeds: list[int]
    quick: bool = False
    progress: Callable[[str], None] = lambda message: None
    figures: list[str] = field(default_factory=list)

    def save(self, figure: plt.Figure, name: str) -> None:
        """``figure`` as NAME.png and NAME.svg in ``out``, listed in the result."""
        self.out.mkdir(parents=True, exist_ok=True)
        figure.tight_layout()
        for suffix in (".png", ".svg"):
            figure.savefig(self.out / f"{name}{suffix}", dpi=110)
        plt.close(figure)
        self.figures.append(f"{name}.png")


@dataclass
class Result:
    """An experiment's outcome: ``table`` is a list of rows (dicts with the same keys, in column order);
    ``numbers`` every measurement, for result.json; ``verdict`` one sentence starting with "Supported",
    "Not supported" or "More nuanced than claimed"."""

    claim: str
    setup: str
    table: list[dict[str, Any]]
    verdict: str
    numbers: dict[str, Any]
    figures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Spread:
    """Mean and spread (min..max) of one measurement over seeds."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.mean:.3g}"
        return f"{self.mean:.3g} ({self.low:.3g}-{self.high:.3g})"

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "min": self.low, "max": self.high, "values": list(self.values)}


def spread(values: Sequence[float]) -> Spread:
    return Spread(tuple(float(v) for v in values))


def differs(a: Spread, b: Spread) -> bool:
    """Whether the seeds' ranges of ``a`` and ``b`` do not overlap (with one seed each: whether they differ)."""
    return a.high < b.low or b.high < a.low


def finite(x: float) -> float | None:
    """``x``, or None where it is NaN or infinite (JSON has no such numbers)."""
    return x if math.isfinite(x) else None


def smooth(values: Sequence[float], window: int = 20) -> list[float]:
    """A trailing moving average of ``values`` over ``window`` steps (for loss curves)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_band(ax: plt.Axes, runs: Sequence[Sequence[float]], label: str, color: str | None = None) -> None:
    """The smoothed loss curves of several seeds on ``ax``: their mean as a line, their range as a band."""
    curves = [smooth(run) for run in runs]
    n = min(map(len, curves))
    steps = range(1, n + 1)
    line = ax.plot(steps, [sum(c[i] for c in curves) / len(curves) for i in range(n)], label=label, color=color)
    ax.fill_between(steps, [min(c[i] for c in curves) for i in range(n)], [max(c[i] for c in curves) for i in range(n)],
                    color=line[0].get_color(), alpha=0.2)


def range_bars(ax: plt.Axes, labels: Sequence[str], values: Sequence[Spread], colors: Sequence[str] | None = None,
               ) -> None:
    """One bar per label at the mean of its seeds, with the seeds' range as an error bar."""
    ax.bar(list(labels), [v.mean for v in values], color=colors, capsize=4,
           yerr=[[v.mean - v.low for v in values], [v.high - v.mean for v in values]])
