"""``transformer evaluate`` and ``transformer.evaluation``: the scores are sacreBLEU's on the same hypotheses."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from sacrebleu.metrics import BLEU, CHRF

from transformer import DecodeOptions
from transformer.data import read_lines
from transformer.evaluation import evaluate, exact_match, score_corpus
from transformer.ops.linear import auto_precision, int8_supported
from transformer.run_config import load_config, save_config
from transformer.translator import Translation, Translator

JSON_KEYS = {
    "bleu",
    "bleu_signature",
    "bleu_details",
    "chrf",
    "chrf_signature",
    "bleu_lowercase",
    "bleu_lowercase_signature",
    "n_sentences",
    "exact_match",
    "beam_size",
    "length_penalty",
    "seconds",
    "sentences_per_s",
    "checkpoint",
    "src",
    "ref",
    "lowercase",
    "int8",
    "precision",
}
HYPS = ["The cat sat on the mat .", "a dog barks", "", "Zweihundert Katzen"]
REFS = ["the cat sat on a mat .", "A dog barks loudly", "nothing", "zweihundert Katzen"]


def sacrebleu_scores(hyps: list[str], refs: list[str], lowercase: bool = False) -> dict:
    """The three scores and signatures computed with sacreBLEU directly."""
    bleu, chrf, bleu_lc = BLEU(lowercase=lowercase), CHRF(lowercase=lowercase), BLEU(lowercase=True)
    return {
        "bleu": bleu.corpus_score(hyps, [refs]).score,
        "chrf": chrf.corpus_score(hyps, [refs]).score,
        "bleu_lowercase": bleu_lc.corpus_score(hyps, [refs]).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_lowercase_signature": str(bleu_lc.get_signature()),
    }


@pytest.mark.parametrize("lowercase", [False, True])
def test_score_corpus_equals_sacrebleu(lowercase: bool) -> None:
    scores = score_corpus(HYPS, REFS, lowercase=lowercase)
    expected = sacrebleu_scores(HYPS, REFS, lowercase)
    assert {k: scores[k] for k in expected} == expected
    assert scores["n_sentences"] == 4
    assert ("case:lc" in scores["bleu_signature"]) == lowercase
    assert "case:lc" in scores["bleu_lowercase_signature"] and "tok:13a" in scores["bleu_signature"]
    # Case matters to cased BLEU only: lower-cased scoring is at least as high here.
    assert scores["bleu_lowercase"] > BLEU().corpus_score(HYPS, [REFS]).score


def test_score_corpus_details_and_perfect_score() -> None:
    perfect = score_corpus(REFS, REFS)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["bleu_details"].startswith("100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000")
    # sacreBLEU's own one-line summary ends with the same text
    assert str(BLEU().corpus_score(HYPS, [REFS])).endswith(score_corpus(HYPS, REFS)["bleu_details"])


def test_score_corpus_rejects_misaligned_input() -> None:
    with pytest.raises(ValueError, match="3 hypotheses but 4 references"):
        score_corpus(HYPS[:3], REFS)
    with pytest.raises(ValueError, match="no sentences"):
        score_corpus([], [])


def test_exact_match() -> None:
    assert exact_match(["a b", " c ", "d"], ["a b", "c", "e"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        exact_match(["a"], [])


class RecordingTranslator:
    """Stands in for a Translator (its ``translate_lines``, over this ``translate``): translates "x" to "X" and
    records what it was asked."""

    decode = DecodeOptions(beam_size=5, length_penalty=1.5)  # a run's [decode] section
    translate_lines = Translator.translate_lines

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], DecodeOptions | None]] = []

    def translate(self, texts, options=None) -> list[list[Translation]]:
        self.calls.append((list(texts), options))
        n_best = (options or self.decode).n_best
        return [[Translation(t.upper(), [5], -1.0), Translation(t, [6], -2.0)][:n_best] for t in texts]


def test_translate_lines_skips_blank_lines_and_keeps_alignment() -> None:
    stub = RecordingTranslator()
    options = DecodeOptions(beam_size=3, n_best=2, length_penalty=1.0, max_len=7)
    out = stub.translate_lines(["a", "", "b", "  "], options)
    assert stub.calls == [(["a", "b"], options)]
    assert [[t.text for t in nbest] for nbest in out] == [["A", "a"], [], ["B", "b"], []]


def test_evaluate_scores_the_best_translations() -> None:
    stub = RecordingTranslator()
    result = evaluate(stub, ["the cat", "", "a dog"], ["THE CAT", "", "a dog"], DecodeOptions(beam_size=2))
    assert stub.calls == [(["the cat", "a dog"], DecodeOptions(beam_size=2))]
    assert result.hypotheses == ["THE CAT", "", "A DOG"]
    assert result.scores["exact_match"] == pytest.approx(2 / 3)
    assert result.scores["bleu"] == BLEU().corpus_score(result.hypotheses, [["THE CAT", "", "a dog"]]).score
    assert result.scores["beam_size"] == 2 and result.scores["n_sentences"] == 3


# -- the command ------------------------------------------------------------------------------------------


def test_json_scores_equal_sacrebleu_on_the_written_hypotheses(cli, tiny_run, tmp_path) -> None:
    hyps_file = tmp_path / "hyps.txt"
    result = cli(
        "evaluate",
        "-c",
        tiny_run.run_dir,
        "--src",
        tiny_run.test_src,
        "--ref",
        tiny_run.test_ref,
        "--beam-size",
        "2",
        "--json",
        "--output",
        hyps_file,
    )
    assert result.code == 0, result.err
    scores = json.loads(result.out)
    assert set(scores) == JSON_KEYS
    hyps = hyps_file.read_text(encoding="utf-8").split("\n")[:-1]
    refs = read_lines(tiny_run.test_ref)
    assert len(hyps) == len(refs) == scores["n_sentences"] == 30
    expected = sacrebleu_scores(hyps, refs)
    assert {k: scores[k] for k in expected} == expected
    assert scores["exact_match"] == sum(h == r for h, r in zip(hyps, refs)) / 30
    assert scores["beam_size"] == 2 and scores["lowercase"] is False and scores["int8"] is False
    assert scores["precision"] == auto_precision("cpu")  # no --precision: auto (bfloat16 on CPUs with bf16 units)
    assert scores["seconds"] > 0 and scores["sentences_per_s"] == pytest.approx(30 / scores["seconds"])
    # the hypotheses are the Translator's, at that precision
    translator = Translator.from_checkpoint(tiny_run.run_dir, device="cpu")
    translator.model.set_inference_precision(scores["precision"])
    sources = read_lines(tiny_run.test_src)
    assert hyps == [n[0].text for n in translator.translate(sources, DecodeOptions(beam_size=2))]


def test_lowercase_flag(cli, tiny_run) -> None:
    result = cli(
        "evaluate",
        "-c",
        tiny_run.run_dir,
        "--src",
        tiny_run.test_src,
        "--ref",
        tiny_run.test_ref,
        "--beam-size",
        "1",
        "--lowercase",
        "--json",
    )
    assert result.code == 0, result.err
    scores = json.loads(result.out)
    assert scores["bleu"] == scores["bleu_lowercase"]
    assert "case:lc" in scores["bleu_signature"] and "case:lc" in scores["chrf_signature"]


def test_text_report(cli, tiny_run) -> None:
    result = cli(
        "evaluate", "-c", tiny_run.run_dir, "--src", tiny_run.test_src, "--ref", tiny_run.test_ref, "--beam-size", "1"
    )
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].startswith("BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert lines[1].startswith("chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    assert lines[2].startswith("BLEU|nrefs:1|case:lc|")
    assert lines[3].startswith("exact match: ") and lines[3].endswith("/30)")
    assert lines[4].startswith("30 sentences, beam 1, ")
    hyps = [
        n[0].text
        for n in Translator.from_checkpoint(tiny_run.run_dir, device="cpu").translate(
            read_lines(tiny_run.test_src), DecodeOptions(beam_size=1)
        )
    ]
    bleu = BLEU().corpus_score(hyps, [read_lines(tiny_run.test_ref)]).score
    assert f" = {bleu:.2f} " in lines[0]


def test_line_count_mismatch(cli, tiny_run, tmp_path) -> None:
    short_ref = tmp_path / "short.de"
    short_ref.write_text("".join(line + "\n" for line in read_lines(tiny_run.test_ref)[:29]), encoding="utf-8")
    result = cli("evaluate", "-c", tiny_run.run_dir, "--src", tiny_run.test_src, "--ref", short_ref)
    assert result.code == 2
    assert f"{tiny_run.test_src} has 30 lines but {short_ref} has 29 lines" in result.err
    assert result.out == ""


def test_missing_reference_file(cli, tiny_run, tmp_path) -> None:
    result = cli("evaluate", "-c", tiny_run.run_dir, "--src", tiny_run.test_src, "--ref", tmp_path / "none.de")
    assert result.code == 2
    assert "none.de" in result.err


def test_decoding_defaults_come_from_the_run_config(cli, tiny_run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    cfg = load_config(run_dir / "config.toml")
    decode = DecodeOptions(beam_size=2, length_penalty=1.0)
    save_config(dataclasses.replace(cfg, decode=decode), run_dir / "config.toml")
    assert Translator.from_checkpoint(run_dir, device="cpu").decode == decode
    common = ("evaluate", "-c", run_dir, "--src", tiny_run.test_src, "--ref", tiny_run.test_ref, "--json")
    from_run = cli(*common)
    assert from_run.code == 0, from_run.err
    assert json.loads(from_run.out)["beam_size"] == 2
    given = cli(*common, "--beam-size", "3")
    assert given.code == 0, given.err
    assert json.loads(given.out)["beam_size"] == 3
    # a checkpoint file of that run takes the same defaults; a run without config.toml the paper's
    assert Translator.from_checkpoint(run_dir / "best.safetensors", device="cpu").decode.beam_size == 2
    (run_dir / "config.toml").unlink()
    assert Translator.from_checkpoint(run_dir, device="cpu").decode == DecodeOptions()


@pytest.mark.skipif(not int8_supported(), reason="int8 inference does not run here (int8_supported)")
def test_int8_flag_evaluates_the_int8_model(cli, tiny_run, tmp_path) -> None:
    hyps_file = tmp_path / "hyps.txt"
    result = cli("evaluate", "-c", tiny_run.run_dir, "--src", tiny_run.test_src, "--ref", tiny_run.test_ref,
                 "--beam-size", "1", "--int8", "--output", hyps_file)
    assert result.code == 0, result.err
    assert ", int8, " in result.out.splitlines()[-1]
    translator = Translator.from_checkpoint(tiny_run.run_dir, device="cpu")
    translator.model.set_int8_inference()
    sources = read_lines(tiny_run.test_src)
    assert hyps_file.read_text(encoding="utf-8").split("\n")[:-1] == [
        n[0].text for n in translator.translate(sources, DecodeOptions(beam_size=1))]


def test_evaluate_without_options_decodes_as_the_run_says() -> None:
    stub = RecordingTranslator()
    result = evaluate(stub, ["a"], ["A"])
    assert stub.calls == [(["a"], RecordingTranslator.decode)]
    assert result.scores["beam_size"] == 5 and result.scores["length_penalty"] == 1.5
