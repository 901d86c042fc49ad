"""``transformer attention``: translate one sentence and draw the model's attention while doing it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError, add_model_arguments, load_translator

FORMATS = ("png", "svg", "pdf")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attention",
        help="translate a sentence and draw its attention heatmaps",
        description=(
            "Translate one sentence, then run the model teacher-forced on its own translation and draw "
            "every attention weight: encoder self-attention (source x source), decoder masked "
            "self-attention (decoder input x decoder input, the future greyed out) and encoder-decoder "
            "attention (output x source, the alignment). Writes DIR/attention_{encoder,decoder,cross}.FORMAT, "
            "one grid of layers x heads each, and prints the translation and the files."
        ),
    )
    add_model_arguments(parser, flags=("--checkpoint",))
    parser.add_argument("--src", required=True, metavar="TEXT", help="the source sentence to translate")
    parser.add_argument(
        "--out",
        default="attention",
        metavar="DIR",
        help="directory for the pictures, created if needed (default: %(default)s)",
    )
    parser.add_argument("--format", choices=FORMATS, default="png", help="image format (default: %(default)s)")
    parser.add_argument(
        "--layer",
        type=int,
        default=None,
        metavar="L",
        help="draw only layer L (0-based, -1 = last); default: every layer",
    )
    parser.add_argument(
        "--head", type=int, default=None, metavar="H", help="draw only head H (0-based); default: every head"
    )
    parser.add_argument(
        "--beam", type=int, default=1, metavar="N", help="beam size of the translation (default: %(default)s, greedy)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..visualization import attention_figures

    if args.beam < 1:
        print(f"transformer attention: error: --beam must be >= 1, got {args.beam}", file=sys.stderr)
        return 2
    try:
        translator = load_translator(args)
        result = translator.attention(args.src, translator.decode.override(beam_size=args.beam, n_best=1))
        figures = attention_figures(result, layer=args.layer, head=args.head)
    except (UsageError, ValueError) as e:
        print(f"transformer attention: error: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(result.translation)
    for kind, fig in figures.items():
        path = out / f"attention_{kind}.{args.format}"
        fig.savefig(path, dpi=150)
        print(path)
    return 0
