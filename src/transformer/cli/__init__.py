"""The ``transformer`` command: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers) -> None``, adding its parser (``importer`` adds
``import``, a Python keyword) and setting
``func=<callable taking the parsed argparse.Namespace and returning an exit code>``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from pathlib import Path

# In the order ``transformer --help`` lists them.
COMMANDS = [
    "demo", "download", "prepare", "train", "average", "translate", "evaluate", "attention", "plot", "serve", "export",
    "importer", "experiments",
]


def package_version() -> str:
    """The installed package's version, from its metadata; from a source tree on ``sys.path`` that was never
    installed, the version its ``pyproject.toml`` states; else ``"unknown"``."""
    try:
        return importlib.metadata.version("transformer")
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, as the ``tomli`` package
        import tomli as tomllib  # type: ignore[no-redef]
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"  # <root>/src/transformer/cli/__init__.py
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "unknown"
    return str(project.get("version", "unknown")) if project.get("name") == "transformer" else "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transformer",
        description="Train, run and inspect encoder-decoder Transformers (Attention Is All You Need).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
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
