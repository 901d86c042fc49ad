"""The ``transformer`` command: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers) -> None``, adding its parser (``importer`` adds
``import``, a Python keyword) and setting
``func=<callable taking the parsed argparse.Namespace and returning an exit code>``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

# In the order ``transformer --help`` lists them.
COMMANDS = [
    "demo", "download", "prepare", "train", "average", "translate", "evaluate", "attention", "plot", "serve", "export",
    "importer", "experiments",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transformer",
        description="Train, run and inspect encoder-decoder Transformers (Attention Is All You Need).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)
