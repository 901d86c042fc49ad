"""Why each part is there: the founding document's claims, each tested by a small, seeded experiment on a CPU.

Each experiment is a module of this package with ``TITLE``, ``CLAIM`` (the document's argument, in one line)
and ``run(ctx: Context) -> Result``; ``EXPERIMENTS`` maps the command-line names to them.
``run_experiments`` runs some, writes each one's ``DIR/NAME/result.json`` and figures, and ``DIR/report.md``
gathering every result in DIR (``transformer experiments run NAME... --out DIR``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

# command-line name -> module of this package; in the order of the founding document's argument.
EXPERIMENTS: dict[str, str] = {
    "long-range": "long_range",
    "normalization": "normalization",
    "scaling": "scaling",
    "positions": "positions",
    "causal-mask": "causal_mask",
    "heads": "heads",
    "depth": "depth",
    "feed-forward": "feed_forward",
}


def experiment(name: str) -> ModuleType:
    """The module of the experiment ``name``; ValueError naming the known ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"{__name__}.{EXPERIMENTS[name]}")


from .runner import run_experiments  # noqa: E402

__all__ = ["EXPERIMENTS", "experiment", "run_experiments"]
