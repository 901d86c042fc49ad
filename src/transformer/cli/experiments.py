"""``transformer experiments``: the founding document's claims, each tested by an experiment
(``transformer.experiments``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import add_subcommands


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "experiments",
        help="test the founding document's claims (why each part is there) by experiment",
        description="Each claim of the founding document about why a part of the Transformer is there (the "
        "sqrt(d_k), LayerNorm, positions, the causal mask, ...) becomes a small seeded experiment on this CPU. "
        "`run` writes DIR/NAME/result.json and figures per experiment and DIR/report.md gathering them.",
    )
    sub = add_subcommands(parser, dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="the experiments and the claims they test")
    listing.set_defaults(func=run_list)
    run = sub.add_parser("run", help="run experiments and write their results and report")
    run.add_argument("names", nargs="+", metavar="NAME", help="experiments to run (see `list`), or `all`")
    run.add_argument("--out", type=Path, required=True, metavar="DIR", help="where results and report.md go")
    run.add_argument("--seeds", type=int, default=3, metavar="N",
                     help="seeds per trained configuration (default: %(default)s; results give mean and range)")
    run.add_argument("--report", type=Path, metavar="FILE",
                     help="write the report here (default: DIR/report.md); figure links are relative to it")
    run.add_argument("--quick", action="store_true", help="a few seconds each: tiny models and data (for tests)")
    run.set_defaults(func=run_run)


def run_list(args: argparse.Namespace) -> int:
    from ..experiments import EXPERIMENTS, experiment

    for name in EXPERIMENTS:
        module = experiment(name)
        print(f"{name:15} {module.TITLE}\n{'':15} \"{module.CLAIM}\"")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from ..experiments import EXPERIMENTS, run_experiments

    unknown = [n for n in args.names if n not in EXPERIMENTS and n != "all"]
    if unknown or args.seeds < 1:
        problem = f"unknown experiment(s) {', '.join(unknown)}: choose from {', '.join(EXPERIMENTS)} or all" \
            if unknown else f"--seeds must be >= 1, got {args.seeds}"
        print(f"transformer experiments: error: {problem}", file=sys.stderr)
        return 2
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {message}", file=sys.stderr, flush=True)

    command = (f"transformer experiments run {' '.join(args.names)} --out {args.out} --seeds {args.seeds}"
               + (f" --report {args.report}" if args.report else "") + (" --quick" if args.quick else ""))
    report = run_experiments(args.names, args.out, args.seeds, args.quick, progress, command, args.report)
    print(f"wrote {report}", file=sys.stderr)
    return 0
