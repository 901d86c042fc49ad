"""``transformer evaluate``: translate a test set and score it with sacreBLEU (BLEU, chrF) and exact match."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..io import atomic_write
from .common import (
    UsageError,
    add_decoding_arguments,
    add_model_arguments,
    check_decoding_arguments,
    decode_options,
    load_translator,
)

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="translate a test set and score it (sacreBLEU BLEU and chrF)",
        description=(
            "Translate --src with the model and score the translations against --ref (one sentence per line, "
            "line-aligned) with sacreBLEU: cased BLEU (13a tokenization), chrF2 and lower-cased BLEU (the "
            "comparable figure for Multi30k papers), each with its sacreBLEU signature, plus the exact-match "
            "rate and the translation speed."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument("--src", required=True, type=Path, metavar="FILE", help="source sentences, one per line")
    parser.add_argument("--ref", required=True, type=Path, metavar="FILE", help="reference translations, one per line")
    parser.add_argument("--batch-tokens", type=int, default=None, metavar="N",
                        help="padded source tokens per decoding batch (default: the translator's, 4096)")
    add_decoding_arguments(parser)
    parser.add_argument("--lowercase", action="store_true", help="score BLEU and chrF case-insensitively")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="also write the translations to FILE (replaced atomically)"
    )
    parser.set_defaults(func=run)


def read_test_set(src: Path, ref: Path) -> tuple[list[str], list[str]]:
    """The source and reference lines; UsageError when a file is bad or the line counts differ."""
    from ..data import CorpusError, read_lines

    try:
        sources, references = read_lines(src), read_lines(ref)
    except CorpusError as e:
        raise UsageError(str(e)) from None
    if len(sources) != len(references):
        raise UsageError(
            f"{src} has {len(sources)} lines but {ref} has {len(references)} lines: "
            "the references must be line-aligned with the sources"
        )
    return sources, references


def format_text(scores: dict[str, Any], lowercase: bool) -> str:
    """The human-readable report: sacreBLEU's ``NAME|signature = score`` lines, exact match, speed."""
    n = scores["n_sentences"]
    lines = [
        f"BLEU|{scores['bleu_signature']} = {scores['bleu']:.2f} {scores['bleu_details']}",
        f"chrF2|{scores['chrf_signature']} = {scores['chrf']:.2f}",
    ]
    if not lowercase:  # with --lowercase the BLEU above is already the lower-cased one
        lines.append(f"BLEU|{scores['bleu_lowercase_signature']} = {scores['bleu_lowercase']:.2f}")
    lines.append(f"exact match: {100 * scores['exact_match']:.2f}% ({round(scores['exact_match'] * n)}/{n})")
    precision = scores.get("precision", "float32")
    lines.append(
        f"{n} sentences, beam {scores['beam_size']}, {precision}, "
        f"{scores['seconds']:.1f} s "
        f"({scores['sentences_per_s']:.1f} sentences/s)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate

    try:
        check_decoding_arguments(args)
        sources, references = read_test_set(args.src, args.ref)
        if not sources:
            raise UsageError(f"{args.src} holds no sentences")
        translator = load_translator(args)
        result = evaluate(translator, sources, references, decode_options(args, translator.decode), args.lowercase)
        if args.output is not None:
            text = "".join(h + "\n" for h in result.hypotheses)
            atomic_write(args.output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except (UsageError, OSError) as e:
        print(f"transformer evaluate: error: {e}", file=sys.stderr)
        return 2
    scores = {
        **result.scores,
        "checkpoint": str(args.checkpoint),
        "src": str(args.src),
        "ref": str(args.ref),
        "lowercase": args.lowercase,
        "int8": args.precision == "int8",
        "precision": args.precision,  # as given, or what auto picked (load_translator)
    }
    print(json.dumps(scores, ensure_ascii=False) if args.json else format_text(scores, args.lowercase))
    return 0
