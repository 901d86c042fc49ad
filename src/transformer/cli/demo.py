"""``transformer demo``: train a small model on a built-in task in minutes and show what it learned."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..demo import DemoResult

DEFAULT_RUN_DIR = Path("runs/demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train a small model to write numbers in German, in a few minutes on a CPU",
        description=(
            "The built-in demo. Generates a synthetic corpus (numbers in English words -> German words, "
            "'twenty-one' -> 'einundzwanzig': German says the units first, so attention must reorder), "
            "prepares it, trains a small Transformer, then prints sample translations of held-out numbers "
            "and the exact-match accuracy on the held-out test numbers. The run directory is then a "
            "checkpoint for `transformer translate`, `evaluate` and `attention`."
        ),
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=DEFAULT_RUN_DIR,
        metavar="RUN",
        help="where the data, checkpoints and vocabulary go; an earlier demo there is replaced (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="training steps (default: the demo's tuned setting; with --quick, a handful)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small corpus and a few steps: checks that everything runs in seconds; learns little",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus and of training (default: 0)")
    parser.set_defaults(func=run)


def report(result: DemoResult, out: TextIO | None = None) -> None:
    """Print the samples, the accuracy, the timings and what to try next (to stdout by default)."""
    out = sys.stdout if out is None else out
    n_right = round(result.accuracy * result.n_test)
    shown = result.samples + result.mistakes
    width = max(len(src) for src, _, _ in shown) if shown else 0
    print("\nHeld-out numbers, English -> German (never seen in training):", file=out)
    for src, hyp, ref in result.samples:
        print(_sample_line(src, hyp, ref, width), file=out)
    if result.mistakes:
        more = result.n_test - n_right - len(result.mistakes)
        print(f"Mistakes{f' (first {len(result.mistakes)})' if more > 0 else ''}:", file=out)
        for src, hyp, ref in result.mistakes:
            print(_sample_line(src, hyp, ref, width), file=out)
    print(
        f"\nExact-match accuracy on {result.n_test} held-out test numbers: {100 * result.accuracy:.1f}% "
        f"({n_right}/{result.n_test})",
        file=out,
    )
    print(f"Model: {result.model}.", file=out)
    speed = f", {result.tokens_per_s:,.0f} target tokens/s" if result.tokens_per_s else ""
    print(
        f"Trained {result.steps} steps in {result.train_seconds:.0f} s{speed}; "
        f"the whole demo took {result.total_seconds:.0f} s.",
        file=out,
    )
    run = shlex.quote(str(result.run_dir))
    test = shlex.quote(str(result.run_dir / "data" / "raw" / "test"))
    print(f"\nThe model is in {result.run_dir}. Try next:", file=out)
    print(f"  echo 'three hundred forty-two thousand one' | transformer translate --checkpoint {run}", file=out)
    print(f"  transformer attention --checkpoint {run} --src 'twenty-one'", file=out)
    print(f"  transformer evaluate --checkpoint {run} --src {test}.en --ref {test}.de", file=out)


def _sample_line(src: str, hyp: str, ref: str, width: int) -> str:
    verdict = "ok" if hyp == ref else f"wrong, expected {ref}"
    if len(hyp) > len(ref) + 20:  # a model that repeats itself: the start says enough
        hyp = hyp[: len(ref) + 20] + "..."
    return f"  {src:<{width}}  ->  {hyp or '(nothing)'}   [{verdict}]"


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    if args.steps is not None and args.steps < 1:
        print(f"transformer demo: error: --steps must be >= 1, got {args.steps}", file=sys.stderr)
        return 2
    try:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm()  # log lines above the progress bar, not through it
    except ImportError:
        redirect = contextlib.nullcontext()
    try:
        with redirect:
            result = run_demo(args.run_dir, steps=args.steps, quick=args.quick, seed=args.seed)
    except FileExistsError as e:
        print(f"transformer demo: error: {e}", file=sys.stderr)
        return 2
    report(result)
    return 0
