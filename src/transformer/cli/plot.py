"""``transformer plot``: pictures that need no model: the positional encoding and training curves."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_subcommands

FORMATS = (".png", ".svg", ".pdf")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw the positional encoding or a run's training curves",
        description="Draw pictures that need no trained model. The image format follows the --out suffix "
        f"({', '.join(FORMATS)}).",
    )
    sub = add_subcommands(parser, dest="plot", metavar="WHAT")

    pe = sub.add_parser(
        "positional-encoding",
        help="the sinusoidal positional encoding of §3.5",
        description="Draw the sinusoidal positional encoding (§3.5): the table as a heatmap (positions x "
        "dimensions), a few dimensions as curves, and the dot product PE(p)·PE(q) against q - p, which "
        "depends only on the distance |p - q|.",
    )
    pe.add_argument("--d-model", type=int, default=512, help="dimensions of the encoding (default: %(default)s)")
    pe.add_argument("--positions", type=int, default=100, help="number of positions (default: %(default)s)")
    pe.add_argument("--out", default="positional_encoding.png", metavar="FILE", help="output (default: %(default)s)")
    pe.set_defaults(func=run_positional_encoding)

    metrics = sub.add_parser(
        "metrics",
        help="training curves of a run",
        description="Draw training loss, validation loss and BLEU, and the learning rate against the step, "
        "from RUN/metrics.jsonl (one JSON object per line, as training writes it).",
    )
    metrics.add_argument("run", metavar="RUN", help="run directory, or a metrics.jsonl file")
    metrics.add_argument(
        "--out", default=None, metavar="FILE", help="output (default: metrics.png beside metrics.jsonl)"
    )
    metrics.set_defaults(func=run_metrics)


def _error(message: str) -> int:
    print(f"transformer plot: error: {message}", file=sys.stderr)
    return 1


def _save(fig, out: Path) -> int:
    if out.suffix.lower() not in FORMATS:
        return _error(f"{out}: unknown image format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    print(out)
    return 0


def run_positional_encoding(args: argparse.Namespace) -> int:
    from ..visualization import plot_positional_encoding

    try:
        fig = plot_positional_encoding(d_model=args.d_model, n_positions=args.positions)
    except ValueError as e:
        return _error(str(e))
    return _save(fig, Path(args.out))


def run_metrics(args: argparse.Namespace) -> int:
    from ..visualization import load_metrics, plot_metrics

    run = Path(args.run)
    try:
        records = load_metrics(run)
        fig = plot_metrics(records, title=str(run))
    except (FileNotFoundError, ValueError) as e:
        return _error(str(e))
    out = Path(args.out) if args.out else (run if run.is_dir() else run.parent) / "metrics.png"
    return _save(fig, out)
