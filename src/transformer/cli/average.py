"""``transformer average``: the mean of several checkpoints' weights, in one safetensors file (§6.1)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "average",
        help="average the weights of several checkpoints",
        description=(
            "Average checkpoints parameter by parameter, as the paper does for its final models (the last 5 "
            "checkpoints for base models, the last 20 for big ones). Give a run directory and --last N, or "
            "the checkpoint files themselves and -o."
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="RUN_DIR|CHECKPOINT",
                        help="a run directory, or .safetensors checkpoint files of one model")
    parser.add_argument("--last", type=int, default=5, metavar="N",
                        help="with a run directory: average its newest N complete checkpoints (default: 5)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="output .safetensors file (default with a run directory: RUN_DIR/average_last{N}"
                             ".safetensors; required with checkpoint files)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.average import average_checkpoints, last_checkpoints

    try:
        if len(args.inputs) == 1 and args.inputs[0].is_dir():
            run_dir = args.inputs[0]
            paths = last_checkpoints(run_dir, args.last)
            output = args.output or run_dir / f"average_last{args.last}.safetensors"
        else:
            paths = args.inputs
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise ValueError(f"no such checkpoint file(s): {', '.join(missing)}")
            if args.output is None:
                raise ValueError("-o/--output is required when averaging checkpoint files")
            output = args.output
        average_checkpoints(paths, output)
    except ValueError as e:
        print(f"transformer average: error: {e}", file=sys.stderr)
        return 2
    log.info("wrote %s", output)
    return 0
