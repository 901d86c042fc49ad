"""``transformer demo``: train a small model on a built-in task in minutes and show what it learned."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import sys
import sysconfig
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


def transformer_command(
    scripts_dir: Path | None = None, search_path: str | None = None, cwd: Path | None = None
) -> tuple[str, str | None]:
    """How to type this installation's ``transformer`` in a shell in ``cwd``, and how to activate its virtualenv
    (``None`` where that is not needed or there is none), for lines printed to be typed as they are.

    ``transformer`` where the one ``search_path`` finds first is ours; else the path of ours (a virtualenv not
    activated: ``.venv/bin/transformer``, relative where it lies below ``cwd``); else this interpreter with
    ``-m transformer`` (a source tree on ``sys.path``, not installed). Defaults: this interpreter's scripts
    directory, ``$PATH``, the working directory.
    """
    scripts = Path(sysconfig.get_path("scripts")) if scripts_dir is None else scripts_dir
    ours = scripts / "transformer"
    if not ours.is_file():
        return f"{shlex.quote(sys.executable)} -m transformer", None
    found = shutil.which("transformer", path=search_path)
    if found is not None and os.path.samefile(found, ours):
        return "transformer", None
    here = Path.cwd() if cwd is None else cwd
    activate = scripts / "activate"
    return _as_typed(ours, here), (f". {_as_typed(activate, here)}" if activate.is_file() else None)


def _as_typed(path: Path, cwd: Path) -> str:
    """``path`` for a shell in ``cwd``: relative where it lies below, with a slash so that it is not looked up."""
    shown = path.relative_to(cwd) if path.is_relative_to(cwd) else path
    return shlex.quote(str(shown) if len(shown.parts) > 1 else f"./{shown}")


def report(
    result: DemoResult, out: TextIO | None = None, command: str = "transformer", activate: str | None = None
) -> None:
    """Print the samples, the accuracy, the timings and what to try next (to stdout by default), each next
    command as ``command`` (``transformer_command``'s), with how to ``activate`` its virtualenv where given."""
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
        f"({n_right}/{result.n_test}; decoded in {result.precision}, as `transformer translate` does here)",
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
    print(f"  echo 'three hundred forty-two thousand one' | {command} translate --checkpoint {run}", file=out)
    print(f"  {command} attention --checkpoint {run} --src 'twenty-one'", file=out)
    print(f"  {command} evaluate --checkpoint {run} --src {test}.en --ref {test}.de", file=out)
    if activate:
        print(f"(or `{activate}` first, and then plain `transformer`)", file=out)


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
    command, activate = transformer_command()
    report(result, command=command, activate=activate)
    return 0
