"""Corpus reading: strict UTF-8 with file:line errors, whitespace normalisation, cleaning counts."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from transformer.data.corpus import CorpusError, clean_pairs, normalize_line, read_lines, read_parallel, sha256_file

MULTI30K = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "multi30k"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_read_lines_normalises_whitespace_and_keeps_alignment(tmp_path: Path) -> None:
    text = (
        "a\tb\n"  # tab
        "  lead and trail  \n"
        "no\u00a0break\u2009thin\u3000ideographic\n"  # NBSP, thin space, ideographic space
        "cr line\r\n"  # CRLF line ending
        "in\rside\n"  # a lone CR inside the line
        "\n"  # blank line kept (clean_pairs drops it), so line numbers stay aligned
        "para\u2028sep\x0cff\n"  # separators that str.splitlines would split on
        "double  space"  # no final newline
    )
    path = write(tmp_path / "x.txt", text.encode("utf-8"))
    assert read_lines(path) == [
        "a b",
        "lead and trail",
        "no break thin ideographic",
        "cr line",
        "in side",
        "",
        "para sep ff",
        "double space",
    ]


def test_read_lines_applies_nfc_and_drops_bom(tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Straße über Café")
    assert decomposed != "Straße über Café"
    path = write(tmp_path / "x.txt", ("\ufeff" + decomposed + "\nzwei\n").encode("utf-8"))
    assert read_lines(path) == ["Straße über Café", "zwei"]
    assert normalize_line(" a \t\u00a0b ") == "a b"


def test_invalid_utf8_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "train.en", b"fine\nalso fine\n\xc3\xa4bc\xffd\n")
    with pytest.raises(CorpusError) as info:
        read_lines(path)
    assert str(info.value) == f"{path}:3: not valid UTF-8 (byte 0xff at column 4)"
    assert (info.value.path, info.value.line) == (path, 3)
    assert isinstance(info.value, ValueError)


def test_empty_and_missing_files_are_errors_naming_the_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.de", b"")
    with pytest.raises(CorpusError, match=r"empty\.de: file is empty"):
        read_lines(empty)
    with pytest.raises(CorpusError, match=r"missing\.de: cannot read"):
        read_lines(tmp_path / "missing.de")


def test_read_parallel_pairs_lines_and_rejects_count_mismatch(tmp_path: Path) -> None:
    src = write(tmp_path / "a.en", b"one\ntwo\nthree\n")
    tgt = write(tmp_path / "a.de", b"eins\nzwei\ndrei\n")
    assert read_parallel(src, tgt) == [("one", "eins"), ("two", "zwei"), ("three", "drei")]
    short = write(tmp_path / "b.de", b"eins\nzwei\n")
    with pytest.raises(CorpusError) as info:
        read_parallel(src, short)
    message = str(info.value)
    assert str(src) in message and str(short) in message and "3 lines" in message and "has 2" in message


def test_clean_pairs_counts_what_it_drops() -> None:
    pairs = [("a", "b"), ("", "x"), ("y", ""), ("long" * 5, "ok"), ("ok", "long" * 5), ("abc", "def")]
    kept, dropped = clean_pairs(pairs, max_len_chars=10)
    assert kept == [("a", "b"), ("abc", "def")]
    assert dropped == {"empty": 2, "too_long": 2}
    kept, dropped = clean_pairs(pairs, max_len_chars=None)
    assert len(kept) == 4 and dropped == {"empty": 2, "too_long": 0}
    with pytest.raises(ValueError):
        clean_pairs(pairs, max_len_chars=0)


def test_sha256_file(tmp_path: Path) -> None:
    path = write(tmp_path / "x", b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.skipif(not MULTI30K.is_dir(), reason=f"Multi30k copy not found at {MULTI30K}")
def test_multi30k_train_tab_and_nbsp_are_normalised() -> None:
    lines = read_lines(MULTI30K / "train.de")
    assert len(lines) == 29000
    assert not any("\t" in line or "\u00a0" in line or "  " in line or line != line.strip() for line in lines)
    raw = (MULTI30K / "train.de").read_text(encoding="utf-8").split("\n")
    assert "\t" in raw[7365]  # the source's one tab (line 7366) became a space
    assert lines[7365] == " ".join(raw[7365].split())
