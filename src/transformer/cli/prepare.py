"""``transformer prepare``: clean a parallel corpus, train the vocabulary, encode and cache it."""

from __future__ import annotations

import argparse
import sys

from ..data.corpus import CorpusError
from ..data.prepare import prepare
from ..data.vocab import MODEL_TYPES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare`` subcommand."""
    parser = subparsers.add_parser(
        "prepare",
        help="clean a parallel corpus, train its SentencePiece vocabulary, encode and cache it",
        description=(
            "Read line-aligned UTF-8 source/target files, normalise whitespace, drop empty (and, with --max-len, "
            "over-long) training pairs with a logged count, train a SentencePiece vocabulary on the training "
            "text, and write the encoded splits, the vocabulary and prepare.json to OUT for `transformer train`. "
            "Bad input (missing or empty file, invalid UTF-8, line counts that differ) stops with a one-line "
            "error naming the file and line, and exit code 2."
        ),
    )
    parser.add_argument("--train-src", required=True, metavar="FILE", help="training source text, one sentence a line")
    parser.add_argument("--train-tgt", required=True, metavar="FILE", help="training target text, line-aligned")
    parser.add_argument("--valid-src", metavar="FILE", help="validation source text (optional, with --valid-tgt)")
    parser.add_argument("--valid-tgt", metavar="FILE", help="validation target text: the BLEU references")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    parser.add_argument("--vocab-size", type=int, default=8000, metavar="N", help="vocabulary size (default 8000)")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--joint",
        dest="joint",
        action="store_true",
        default=True,
        help="one vocabulary shared by both languages, needed for shared embeddings (default)",
    )
    layout.add_argument("--separate", dest="joint", action="store_false", help="one vocabulary per language")
    parser.add_argument(
        "--model-type", choices=MODEL_TYPES, default="unigram", help="SentencePiece model type (default unigram)"
    )
    parser.add_argument(
        "--max-len",
        "--max-len-chars",
        dest="max_len_chars",
        type=int,
        metavar="CHARS",
        help="drop training pairs with a side longer than CHARS characters (default: keep all)",
    )
    parser.add_argument(
        "--max-tokens-per-sentence",
        type=int,
        metavar="N",
        help="drop training pairs with a side of more than N subwords (default: keep all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="vocabulary training seed (default 0)")
    parser.add_argument("--vocab-from", metavar="RUN",
                        help="encode with this run's vocabularies (ours, or a `transformer import`ed one) instead of "
                        "training new ones, to fine-tune RUN with `transformer train --init-from RUN`; "
                        "--vocab-size, --joint/--separate and --model-type do not apply")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``prepare``; 0 on success, 2 with a one-line message on bad input."""
    try:
        prepare(
            args.train_src,
            args.train_tgt,
            args.out,
            valid_src=args.valid_src,
            valid_tgt=args.valid_tgt,
            vocab_size=args.vocab_size,
            joint=args.joint,
            model_type=args.model_type,
            max_len_chars=args.max_len_chars,
            max_tokens_per_sentence=args.max_tokens_per_sentence,
            seed=args.seed,
            vocab_from=args.vocab_from,
        )
    except (CorpusError, ValueError, OSError) as exc:
        print(f"transformer prepare: error: {exc}", file=sys.stderr)
        return 2
    return 0
