"""``transformer download``: fetch a public data set, checksum-verified."""

from __future__ import annotations

import argparse
import logging
import sys

from ..data.download import MULTI30K_LANGUAGES, MULTI30K_SPLITS, MULTI30K_URL, DownloadError, download_multi30k

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``download`` subcommand."""
    parser = subparsers.add_parser(
        "download",
        help="download a data set (Multi30k English-German), checksum-verified",
        description=(
            "Download the Multi30k task-1 raw text files (English-German image captions; non-commercial research "
            "and education use only, see the data set's README) into DIR as train.en, train.de, val.en, val.de, "
            "test2016.en, ... Each file is gunzipped and kept only if its SHA-256 matches the known value; files "
            "already present with the right checksum are skipped. Exit code 1 on a network or checksum failure."
        ),
    )
    parser.add_argument("dataset", choices=["multi30k"], help="the data set")
    parser.add_argument("dir", metavar="DIR", help="output directory (created if needed)")
    parser.add_argument(
        "--base-url",
        default=MULTI30K_URL,
        metavar="URL",
        help=f"directory holding the .gz files (default {MULTI30K_URL})",
    )
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=list(MULTI30K_SPLITS),
        default=list(MULTI30K_SPLITS),
        metavar="SPLIT",
        help=f"splits to fetch, from: {', '.join(MULTI30K_SPLITS)} (default: all)",
    )
    parser.add_argument(
        "--languages",
        nargs="+",
        choices=list(MULTI30K_LANGUAGES),
        default=list(MULTI30K_LANGUAGES),
        metavar="LANG",
        help="languages to fetch (default: en de)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``download``; 0 on success, 1 with a one-line message on failure."""
    try:
        paths = download_multi30k(args.dir, base_url=args.base_url, splits=args.splits, languages=args.languages)
    except (DownloadError, OSError) as exc:
        print(f"transformer download: error: {exc}", file=sys.stderr)
        return 1
    logger.info("%d files in %s", len(paths), args.dir)
    return 0
