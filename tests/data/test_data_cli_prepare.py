"""`transformer prepare` through the command-line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transformer.cli import main
from transformer.data.prepare import EncodedCorpus
from transformer.demo.numbers import english_words, german_words


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    numbers = list(range(0, 3000, 11))
    return {
        name: str(write_lines(tmp_path / name, [words(n) for n in subset]))
        for name, words, subset in [
            ("train.en", english_words, numbers),
            ("train.de", german_words, numbers),
            ("valid.en", english_words, range(1, 3000, 301)),
            ("valid.de", german_words, range(1, 3000, 301)),
        ]
    }


def test_cli_prepare_writes_a_prepared_directory(tmp_path: Path, files: dict[str, str]) -> None:
    out = tmp_path / "data"
    argv = ["prepare", "--train-src", files["train.en"], "--train-tgt", files["train.de"]]
    argv += ["--valid-src", files["valid.en"], "--valid-tgt", files["valid.de"], "--out", str(out)]
    argv += ["--vocab-size", "90", "--separate", "--model-type", "bpe", "--max-len", "100", "--seed", "3"]
    assert main(argv) == 0
    manifest = json.loads((out / "prepare.json").read_text(encoding="utf-8"))
    assert manifest["joint"] is False and manifest["model_type"] == "bpe" and manifest["seed"] == 3
    assert manifest["max_len_chars"] == 100
    assert (out / "vocab" / "src.model").is_file() and (out / "vocab" / "tgt.model").is_file()
    assert len(EncodedCorpus.load(out, "valid")) == 10


def test_cli_prepare_bad_input_is_one_line_exit_2(
    tmp_path: Path, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.de"
    bad.write_bytes(b"eins\nzwei\ndr\xe4i\n")  # Latin-1 'ä'
    argv = ["prepare", "--train-src", files["train.en"], "--train-tgt", str(bad), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"transformer prepare: error: {bad}:3: not valid UTF-8 (byte 0xe4 at column 3)\n" in err
    assert "Traceback" not in err

    argv = ["prepare", "--train-src", files["train.en"], "--train-tgt", files["valid.de"], "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.en has 273 lines but" in err and "valid.de has 10" in err

    argv = ["prepare", "--train-src", files["train.en"], "--train-tgt", files["train.de"], "--out", str(tmp_path / "o")]
    assert main([*argv, "--valid-src", files["valid.en"]]) == 2
    assert "valid_tgt" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse's own usage errors also exit with 2
        main(["prepare", "--train-src", files["train.en"]])
    assert info.value.code == 2
