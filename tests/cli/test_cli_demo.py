"""``transformer demo``: the packaged settings, a quick end-to-end run, and (slow, opt-in) the full demo's accuracy."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil

import pytest
import torch
from safetensors.torch import load_file

from transformer import DecodeOptions
from transformer.checkpoint import read_metadata
from transformer.cli.demo import report
from transformer.data import read_lines
from transformer.demo.run import DemoResult, choose_model, exact_match_of, load_demo_toml, pick_samples, run_config
from transformer.ops.linear import auto_precision
from transformer.run_dir import list_checkpoints
from transformer.translator import Translator


def test_packaged_demo_toml_is_a_valid_run_config() -> None:
    settings, run_part = load_demo_toml()
    cfg = run_config(run_part, ["data.dir='somewhere'"])
    assert cfg.data.dir == "somewhere"
    assert cfg.model.d_model % cfg.model.n_heads == 0
    assert settings.n_train + settings.n_valid + settings.n_test <= settings.max_number + 1
    assert settings.quick_steps < cfg.train.max_steps
    assert cfg.train.valid_bleu_sentences == 0 and cfg.model.share_embeddings
    assert cfg.decode == DecodeOptions()  # the demo decodes with the paper's beam search


def test_quick_demo_end_to_end(cli, tmp_path) -> None:
    run_dir = tmp_path / "demo"
    result = cli("demo", "--quick", "--steps", "3", "--run-dir", run_dir, "--seed", "3")
    assert result.code == 0, result.err

    settings, _ = load_demo_toml()
    n_test = settings.quick_n_test
    match = re.search(
        rf"Exact-match accuracy on {n_test} held-out test numbers: ([\d.]+)% \((\d+)/{n_test}; decoded in "
        rf"{auto_precision('cpu')}, as `transformer translate` does here\)",
        result.out,
    )
    assert match, result.out
    assert "Trained 3 steps in " in result.out
    assert f"transformer translate --checkpoint {run_dir}" in result.out
    assert f"transformer attention --checkpoint {run_dir} --src 'twenty-one'" in result.out

    record = json.loads((run_dir / "demo.json").read_text(encoding="utf-8"))
    assert record["status"] == "done" and record["steps"] == 3 and record["quick"] is True
    assert record["accuracy"] == pytest.approx(float(match.group(1)) / 100, abs=5e-4)
    assert round(record["accuracy"] * n_test) == int(match.group(2))

    # held-out numbers are not in the training data
    raw = run_dir / "data" / "raw"
    train = set(read_lines(raw / "train.en"))
    test = read_lines(raw / "test.en")
    assert len(train) == settings.quick_n_train and len(test) == n_test and not train & set(test)

    # the run directory is a checkpoint, and the samples are what it translates (at the command line's precision)
    translator = Translator.from_checkpoint(run_dir, device="cpu")
    assert record["precision"] == auto_precision("cpu")
    translator.model.set_inference_precision(record["precision"])
    beam_size = record["scores"]["beam_size"]
    refs = read_lines(raw / "test.de")
    best = [nbest[0].text for nbest in translator.translate(test, DecodeOptions(beam_size=beam_size))]
    assert record["accuracy"] == sum(h == r for h, r in zip(best, refs)) / n_test
    truth = {src: (hyp, ref) for src, hyp, ref in zip(test, best, refs)}
    assert len(record["samples"]) == settings.samples
    assert all(truth[src] == (hyp, ref) for src, hyp, ref in record["samples"] + record["mistakes"])
    wrong = [[src, hyp, ref] for src, (hyp, ref) in truth.items() if hyp != ref]
    assert record["mistakes"] == wrong[: len(record["mistakes"])] and len(record["mistakes"]) == min(len(wrong), 5)
    printed = [line for line in result.out.splitlines() if " ->  " in line]
    assert len(printed) == settings.samples + len(record["mistakes"])

    # a second demo in the same directory starts over instead of failing
    again = cli("demo", "--quick", "--steps", "1", "--run-dir", run_dir)
    assert again.code == 0, again.err
    assert json.loads((run_dir / "demo.json").read_text(encoding="utf-8"))["steps"] == 1


def test_pick_samples_spreads_over_lengths() -> None:
    triples = [(src, src.upper(), src.upper()) for src in ["aaaa", "a", "aaaaaa", "aa", "aaaaa", "aaa"]]
    assert [t[0] for t in pick_samples(triples, 3)] == ["a", "aaa", "aaaaaa"]  # positions 0, round(2.5), 5
    assert [t[0] for t in pick_samples(triples, 10)] == ["a", "aa", "aaa", "aaaa", "aaaaa", "aaaaaa"]
    assert pick_samples(triples, 1) == [("a", "A", "A")] and pick_samples(triples, 0) == []


def test_demo_refuses_a_run_it_did_not_make(cli, tiny_run) -> None:
    before = sorted(p.name for p in tiny_run.run_dir.iterdir())
    result = cli("demo", "--quick", "--run-dir", tiny_run.run_dir)
    assert result.code == 2
    assert "already holds a training run that the demo did not make" in result.err
    assert sorted(p.name for p in tiny_run.run_dir.iterdir()) == before


def test_bad_steps(cli, tmp_path) -> None:
    result = cli("demo", "--steps", "0", "--run-dir", tmp_path / "demo")
    assert result.code == 2 and "--steps must be >= 1" in result.err
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TRANSFORMER_SLOW") != "1", reason="the full demo takes minutes: TRANSFORMER_SLOW=1")
def test_full_demo_reaches_95_percent(cli, tmp_path) -> None:
    result = cli("demo", "--run-dir", tmp_path / "demo")
    assert result.code == 0, result.err
    record = json.loads((tmp_path / "demo" / "demo.json").read_text(encoding="utf-8"))
    print(result.out)
    assert record["accuracy"] >= 0.95, result.out


def test_choose_model_keeps_the_better_of_best_and_average(tiny_run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    found = list_checkpoints(run_dir)
    assert len(found) == 2  # steps 50 and 100
    best_before = load_file(str(run_dir / "best.safetensors"))
    raw = tiny_run.run_dir.parent / "raw"
    valid = (raw / "valid.en", raw / "valid.de")
    decode = DecodeOptions(beam_size=1)

    description = choose_model(run_dir, 3, valid, decode)

    averaged = load_file(str(run_dir / "average.safetensors"))
    first, last = (load_file(str(path)) for _, path in found)
    name = next(iter(averaged))
    torch.testing.assert_close(averaged[name], (first[name].double() + last[name].double()).div(2).float())
    best_acc, _ = exact_match_of(tiny_run.run_dir / "best.safetensors", valid, decode)
    average_acc, _ = exact_match_of(run_dir / "average.safetensors", valid, decode)
    best_after = load_file(str(run_dir / "best.safetensors"))
    kept = averaged if average_acc >= best_acc else best_before
    assert best_after.keys() == kept.keys() and all(torch.equal(best_after[k], kept[k]) for k in kept)
    assert description.startswith("the average" if average_acc >= best_acc else "the checkpoint")
    assert "steps 50, 100" in description


def test_choose_model_with_one_checkpoint_keeps_best(tiny_run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run_dir)
    description = choose_model(run_dir, 1, (tmp_path / "unused.en", tmp_path / "unused.de"), None)
    step = read_metadata(run_dir / "best.safetensors")["step"]
    assert description == f"the checkpoint with the best validation loss (step {step})"
    assert not (run_dir / "average.safetensors").exists()


def test_report_format(tmp_path) -> None:
    result = DemoResult(
        run_dir=tmp_path / "my run",
        accuracy=0.5,
        n_test=4,
        samples=[("twenty-one", "einundzwanzig", "einundzwanzig"), ("four hundred", "", "vierhundert")],
        mistakes=[("four hundred", "", "vierhundert"), ("seven", "sieben" * 10, "sieben")],
        model="the average of the checkpoints of steps 1, 2",
        steps=2,
        train_seconds=3.2,
        total_seconds=4.9,
        tokens_per_s=1234.5,
        scores={},
        precision="bfloat16",
    )
    out = io.StringIO()
    report(result, out)
    lines = out.getvalue().splitlines()
    assert "  twenty-one    ->  einundzwanzig   [ok]" in lines
    assert "  four hundred  ->  (nothing)   [wrong, expected vierhundert]" in lines
    assert f"  seven         ->  {('sieben' * 5)[:26]}...   [wrong, expected sieben]" in lines
    assert "Mistakes:" in lines
    assert "Exact-match accuracy on 4 held-out test numbers: 50.0% (2/4; decoded in bfloat16, as `transformer " \
        "translate` does here)" in lines
    assert "Model: the average of the checkpoints of steps 1, 2." in lines
    assert "Trained 2 steps in 3 s, 1,234 target tokens/s; the whole demo took 5 s." in lines
    run = shlex.quote(str(tmp_path / "my run"))
    assert f"  transformer attention --checkpoint {run} --src 'twenty-one'" in lines
