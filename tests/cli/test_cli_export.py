"""``transformer export``: a trained run becomes a CTranslate2 model that translates text as ours does."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from transformer import DecodeOptions
from transformer.translator import Translator

ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed (pip install '.[export]')")


def test_exported_run_translates_text_as_ours(cli, tiny_run, tmp_path) -> None:
    out = tmp_path / "ct2"
    result = cli("export", tiny_run.run_dir, out)
    assert result.code == 0, result.err
    assert f"wrote {out} (float32 weights)" in result.err
    assert "suppress_sequences" in result.err  # the usage hint

    lines = tiny_run.test_src.read_text(encoding="utf-8").splitlines()
    sp = spm.SentencePieceProcessor(model_file=str(out / "joint.model"))
    theirs = ctranslate2.Translator(str(out), device="cpu", intra_threads=1).translate_batch(
        [sp.encode(line, out_type=str) for line in lines], beam_size=1, max_decoding_length=60,
        suppress_sequences=[["<s>"], ["<pad>"]],
    )
    ours = Translator.from_checkpoint(tiny_run.run_dir, device="cpu").translate(lines, DecodeOptions(beam_size=1,
                                                                                                     max_len=60))
    assert [sp.decode(r.hypotheses[0]) for r in theirs] == [nbest[0].text for nbest in ours]
    assert any(nbest[0].text for nbest in ours)  # not vacuous: the model writes something


def test_int8_export_of_a_checkpoint_file(cli, tiny_run, tmp_path) -> None:
    checkpoint = sorted((tiny_run.run_dir / "checkpoints").glob("*.safetensors"))[-1]
    result = cli("export", checkpoint, tmp_path / "int8", "--quantization", "int8")
    assert result.code == 0, result.err
    translator = ctranslate2.Translator(str(tmp_path / "int8"), device="cpu", compute_type="int8", intra_threads=1)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "int8" / "joint.model"))
    assert translator.translate_batch([sp.encode("seven", out_type=str)], beam_size=2)[0].hypotheses


def test_export_errors_name_the_problem(cli, tiny_run, tmp_path) -> None:
    missing = cli("export", tmp_path / "nowhere", tmp_path / "out")
    assert missing.code == 2
    assert "nowhere: no such checkpoint or run directory" in missing.err

    (tmp_path / "taken").mkdir()
    taken = cli("export", tiny_run.run_dir, tmp_path / "taken")
    assert taken.code == 2
    assert "taken already exists (use --force to replace it)" in taken.err
    assert list((tmp_path / "taken").iterdir()) == []
    assert cli("export", tiny_run.run_dir, tmp_path / "taken", "--force").code == 0
    assert (tmp_path / "taken" / "model.bin").is_file()
