"""``transformer attention`` and ``transformer plot``: files in the asked format, clear errors.

The ``attention`` command is tested without a trained checkpoint: ``Translator.from_checkpoint`` is
monkeypatched to return a Translator over a tiny random model and a word-level vocabulary (see
conftest.py). Loading real run directories is the checkpoint code's to test.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from transformer.cli import main
from transformer.translator import Translator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def assert_svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    assert ET.fromstring(text.encode()).tag == "{http://www.w3.org/2000/svg}svg", path
    return text


@pytest.fixture
def fake_checkpoint(monkeypatch, short_translator):
    """Make every checkpoint path load the tiny random model; records the (path, device) asked for."""
    translator = short_translator
    calls = []

    def from_checkpoint(cls, path, device=None):
        calls.append((str(path), device))
        return translator

    monkeypatch.setattr(Translator, "from_checkpoint", classmethod(from_checkpoint))
    return translator, calls


def test_help_lists_both_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "attention" in out and "plot" in out


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_attention_writes_one_picture_per_kind(tmp_path, capsys, fake_checkpoint, fmt):
    translator, calls = fake_checkpoint
    out = tmp_path / "pictures"
    code = main(["attention", "--checkpoint", "RUN", "--src", "the cat sat", "--out", str(out), "--format", fmt])
    assert code == 0
    assert calls == [("RUN", "auto")]
    printed = capsys.readouterr().out.splitlines()
    paths = [out / f"attention_{kind}.{fmt}" for kind in ("encoder", "decoder", "cross")]
    greedy = translator.translate(["the cat sat"], translator.decode.override(beam_size=1))[0][0].text
    assert printed == [greedy, *map(str, paths)]
    for path in paths:
        if fmt == "png":
            assert_png(path)
        else:
            # Matplotlib writes each text as a comment beside its glyphs: all 3 x 2 encoder panels are there.
            text = assert_svg(path)
            if path.name == "attention_encoder.svg":
                assert all(f"layer {li}, head {hi}" in text for li in range(2) for hi in range(2))


def test_attention_one_layer_and_head(tmp_path, fake_checkpoint):
    code = main(["attention", "--checkpoint", "RUN", "--src", "a dog ran", "--out", str(tmp_path),
                 "--format", "svg", "--layer", "-1", "--head", "1", "--beam", "2"])
    assert code == 0
    encoder = assert_svg(tmp_path / "attention_encoder.svg")
    assert "layer 1, head 1" in encoder and "layer 0, head" not in encoder and "head 0" not in encoder
    cross = assert_svg(tmp_path / "attention_cross.svg")
    assert "layer 2, head 1" in cross and "layer 1, head" not in cross  # the decoder has 3 layers


def test_attention_errors_exit_nonzero_with_a_message(tmp_path, capsys, fake_checkpoint):
    code = main(["attention", "--checkpoint", "RUN", "--src", "the cat", "--out", str(tmp_path), "--layer", "7"])
    assert code == 1
    assert "layer 7 does not exist" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_attention_missing_checkpoint(tmp_path, capsys):
    code = main(["attention", "--checkpoint", str(tmp_path / "nope"), "--src", "x", "--out", str(tmp_path / "o")])
    assert code == 1
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_positional_encoding(tmp_path, capsys, suffix):
    out = tmp_path / "sub" / f"pe{suffix}"
    assert main(["plot", "positional-encoding", "--d-model", "32", "--positions", "20", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    if suffix == ".png":
        assert_png(out)
    else:
        assert "d_model = 32" in assert_svg(out)


def test_plot_bad_arguments(tmp_path, capsys):
    assert main(["plot", "positional-encoding", "--out", str(tmp_path / "pe.jpg")]) == 1
    assert "unknown image format '.jpg'" in capsys.readouterr().err
    assert main(["plot", "positional-encoding", "--positions", "1", "--out", str(tmp_path / "pe.png")]) == 1
    assert "n_positions >= 2" in capsys.readouterr().err
    assert main(["plot"]) == 2  # no picture named: the help


def test_plot_metrics_writes_png_and_svg(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"step": 10, "loss": 4.0, "lr": 1e-4}, {"step": 20, "loss": 3.0, "lr": 2e-4, "valid_bleu": 3.5}]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["plot", "metrics", str(run)]) == 0
    assert_png(run / "metrics.png")
    svg = tmp_path / "curves.svg"
    assert main(["plot", "metrics", str(run / "metrics.jsonl"), "--out", str(svg)]) == 0
    text = assert_svg(svg)
    assert "Validation BLEU" in text and "Learning rate" in text
    assert capsys.readouterr().out.splitlines() == [str(run / "metrics.png"), str(svg)]


def test_plot_metrics_bad_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, loss: 1.0}\n')
    assert main(["plot", "metrics", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'metrics.jsonl'}, line 2: not valid JSON" in err
    assert not (tmp_path / "metrics.png").exists()
    assert main(["plot", "metrics", str(tmp_path / "missing")]) == 1
    assert "no metrics file" in capsys.readouterr().err
