"""Reading plain-text corpora: one sentence per line, strict UTF-8, normalised whitespace.

Every error is a :class:`CorpusError` whose message names the file and, where it applies, the 1-based
line (``train.en:17: not valid UTF-8 (byte 0xff at column 5)``), so a command line can print it as is.

Lines are split on ``\\n`` only (what ``wc -l`` counts), never on the other characters that
:meth:`str.splitlines` treats as line breaks (form feed, U+2028, ...): those would silently shift one
side of a parallel corpus against the other. Inside a line, :func:`normalize_line` applies NFC and turns
every run of Unicode whitespace (tab, CR, no-break space, U+2000..U+200A, U+3000, U+2028, ...) into a
single space, then strips both ends.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

# ``\s`` on ``str`` patterns matches every Unicode White_Space character (tab, CR, NBSP, U+2000..U+200A,
# U+2028/U+2029, U+3000, ...) plus the ASCII separators U+001C..U+001F.
_WHITESPACE = re.compile(r"\s+")
_BOM = "\ufeff"


class CorpusError(ValueError):
    """A corpus file that cannot be used; the message names the file (and line when there is one).

    Args:
        message: what is wrong.
        path: the file; when given, the message is prefixed ``"{path}:"`` (and ``"{line}:"``).
        line: the 1-based line number, if the problem is on one line.
    """

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None, line: int | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        prefix = ""
        if path is not None:
            prefix = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(prefix + message)


def normalize_line(text: str) -> str:
    """NFC, every run of Unicode whitespace (tabs, CR, NBSP, ...) -> one space, stripped.

    The one text normalisation of the project: corpus reading and :meth:`Vocab.encode` both use it, so
    text typed at translation time is treated exactly like the training data.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def _decode_line(raw: bytes, path: str | os.PathLike[str], lineno: int) -> str:
    """Strict UTF-8 decoding of one line; the error gives the offending byte and its 1-based column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8", errors="replace")) + 1
        raise CorpusError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {column})", path, lineno) from None


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """All lines of a UTF-8 text file, each passed through :func:`normalize_line`.

    A leading byte-order mark is dropped and the final newline does not start an extra line; blank lines
    are kept (as ``""``) so that line numbers and parallel alignment stay intact.

    Raises:
        CorpusError: the file is missing or unreadable, is empty, or a line is not valid UTF-8.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read ({exc.strerror or exc})", path) from None
    if not data:
        raise CorpusError("file is empty", path)
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    lines = []
    for lineno, raw in enumerate(raw_lines, start=1):
        text = _decode_line(raw, path, lineno)
        if lineno == 1 and text.startswith(_BOM):
            text = text[len(_BOM) :]
        lines.append(normalize_line(text))
    return lines


def read_parallel(src_path: str | os.PathLike[str], tgt_path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Line-aligned (source, target) pairs from two files.

    Raises:
        CorpusError: either file is bad (see :func:`read_lines`) or the line counts differ.
    """
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
            "a parallel corpus needs exactly one target line per source line"
        )
    return list(zip(src, tgt))


def clean_pairs(
    pairs: Iterable[tuple[str, str]], max_len_chars: int | None = None
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Drop pairs with an empty side, and pairs with a side longer than ``max_len_chars`` characters.

    Returns:
        The kept pairs (in order) and the counts ``{"empty": n, "too_long": m}``. The caller must
        report the counts: nothing is dropped silently.
    """
    if max_len_chars is not None and max_len_chars < 1:
        raise ValueError(f"max_len_chars must be positive, got {max_len_chars}")
    kept: list[tuple[str, str]] = []
    dropped = {"empty": 0, "too_long": 0}
    for src, tgt in pairs:
        if not src or not tgt:
            dropped["empty"] += 1
        elif max_len_chars is not None and max(len(src), len(tgt)) > max_len_chars:
            dropped["too_long"] += 1
        else:
            kept.append((src, tgt))
    return kept, dropped


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (recorded for provenance, checked after downloads)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()
