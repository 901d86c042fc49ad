"""``transformer translate``: translate text, one sentence per line, with a trained model.

Reads stdin (or ``--input``) and writes stdout (or ``--output``, replaced atomically: a failed run leaves
no half-written file). A blank input line gives a blank output line, so the output stays line-aligned
with the input. With ``--n-best K`` (K > 1) every input line gives K lines ``i ||| translation ||| score``
(``i`` the 0-based input line, as in Moses and fairseq); blank input lines give none.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..io import atomic_write
from .common import (
    UsageError,
    add_decoding_arguments,
    add_model_arguments,
    check_decoding_arguments,
    decode_options,
    load_translator,
)

if TYPE_CHECKING:
    from ..decoding import DecodeOptions
    from ..translator import Translation, Translator

log = logging.getLogger(__name__)

# Lines translated together when reading a file or a pipe (sorted by length inside a chunk); a terminal
# gets each line translated as soon as it is typed.
CHUNK_LINES = 2000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "translate",
        help="translate sentences (one per line) with a trained model",
        description=(
            "Translate one sentence per line from stdin (or --input) to stdout (or --output) with beam search "
            "(the run's [decode] settings unless options here say otherwise; by default the paper's, §6.1). "
            "Blank lines stay blank. With --n-best K > 1, print K lines 'i ||| translation ||| score' per "
            "input line (i from 0)."
        ),
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--input", "-i", default="-", metavar="FILE", help="UTF-8 text, one sentence per line (default: - for stdin)"
    )
    parser.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="FILE",
        help="where to write the translations, replaced atomically (default: - for stdout)",
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        metavar="N",
        help="padded source tokens per decoding batch (default: the translator's, 4096)",
    )
    add_decoding_arguments(parser)
    parser.add_argument(
        "--n-best",
        type=int,
        default=1,
        metavar="K",
        help="hypotheses printed per sentence, at most --beam-size (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def read_input(path: str) -> Iterator[str]:
    """The lines of ``path`` (``-``: stdin), without their line ends; strict UTF-8, a leading BOM dropped.

    Lines end at ``\\n`` only (what ``wc -l`` counts); a ``\\r`` before it is removed.
    """
    if path == "-":
        yield from _decode_lines(sys.stdin.buffer, "<stdin>")
        return
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the generator is consumed
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        yield from _decode_lines(f, path)


def _decode_lines(stream: IO[bytes], name: str) -> Iterator[str]:
    for lineno, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"{name}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
        if lineno == 1:
            line = line.removeprefix("\ufeff")
        yield line.removesuffix("\n").removesuffix("\r")


def chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    """``lines`` in lists of ``size`` (the last one shorter)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def format_translations(nbest: list[list[Translation]], n_best: int, first_index: int) -> str:
    """The output text of one chunk: a line per input line, or ``i ||| text ||| score`` lines when n_best > 1."""
    if n_best == 1:
        return "".join((results[0].text if results else "") + "\n" for results in nbest)
    return "".join(
        f"{first_index + i} ||| {t.text} ||| {t.score:.4f}\n" for i, results in enumerate(nbest) for t in results
    )


def translate_stream(
    translator: Translator, lines: Iterable[str], out: IO[str], options: DecodeOptions, chunk_lines: int
) -> int:
    """Translate ``lines`` chunk by chunk, writing each chunk's output as soon as it is done; returns the count."""
    n = 0
    for chunk in chunks(lines, chunk_lines):
        out.write(format_translations(translator.translate_lines(chunk, options), options.n_best, n))
        out.flush()
        n += len(chunk)
    return n


def run(args: argparse.Namespace) -> int:
    try:
        check_decoding_arguments(args)
        if args.input != "-" and not Path(args.input).is_file():
            raise UsageError(f"cannot read {args.input}: no such file")
        translator = load_translator(args)
        options = decode_options(args, translator.decode, n_best=args.n_best)
        interactive = args.input == "-" and sys.stdin.isatty()
        chunk_lines = 1 if interactive else CHUNK_LINES
        started = time.perf_counter()
        if args.output == "-":
            n = translate_stream(translator, read_input(args.input), sys.stdout, options, chunk_lines)
        else:
            counted = [0]

            def write(tmp: Path) -> None:
                with open(tmp, "w", encoding="utf-8", newline="\n") as out:
                    counted[0] = translate_stream(translator, read_input(args.input), out, options, chunk_lines)

            atomic_write(Path(args.output), write)
            n = counted[0]
    except UsageError as e:
        print(f"transformer translate: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 1
    except OSError as e:  # the output cannot be written
        print(f"transformer translate: error: {e}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    log.info("translated %d lines in %.1f s (%.1f lines/s)", n, seconds, n / seconds if seconds > 0 else 0.0)
    return 0
