"""``transformer import``: a checkpoint of another system as a run directory (``transformer.interop``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_subcommands


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import a pretrained MarianMT / OPUS-MT checkpoint as a run directory",
        description="Turn a checkpoint of another system into a run directory that every command takes "
        "(translate, evaluate, attention, serve, export, train --init-from).",
    )
    sub = add_subcommands(parser, dest="format", metavar="FORMAT")
    marian = sub.add_parser(
        "marian",
        help="a Hugging Face MarianMT directory (the OPUS-MT models)",
        description="Read a MarianMT directory (config.json; model.safetensors or pytorch_model.bin; source.spm, "
        "target.spm, vocab.json; generation_config.json when present) and write RUN: best.safetensors, vocab/ "
        "(its tokenizer files), config.toml (the architecture, and the checkpoint's decoding defaults as "
        "[decode], with Hugging Face's length normalisation, length_normalization = 'power') and import.json. "
        "Nothing is written when the directory is not a Marian checkpoint or holds an option our model cannot "
        "express; the error names the file or the field.",
    )
    marian.add_argument("source", type=Path, metavar="DIR", help="the MarianMT directory (e.g. from `hf download`)")
    marian.add_argument("run_dir", type=Path, metavar="RUN", help="the run directory to write")
    marian.add_argument("--force", action="store_true", help="replace RUN if it exists")
    marian.set_defaults(func=run_marian)


def run_marian(args: argparse.Namespace) -> int:
    from ..interop.marian import MarianError, import_marian

    try:
        import_marian(args.source, args.run_dir, force=args.force)
    except (MarianError, FileExistsError) as e:
        print(f"transformer import: error: {e}", file=sys.stderr)
        return 2
    print(f"imported {args.source} into {args.run_dir}; translate with: transformer translate -c {args.run_dir}",
          file=sys.stderr)
    return 0
