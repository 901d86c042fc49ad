"""train(): seeded repeatability, resume exactness, metrics, validation bookkeeping, run directory contents."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from transformer.data import load_vocabs
from transformer.run_config import TrainConfig, load_config
from transformer.run_dir import latest_checkpoint, list_checkpoints, load_model
from transformer.training.checkpoint import load_training_state
from transformer.training.loop import Progress, train, update_best
from transformer.training.metrics import read_metrics
from transformer.training.schedule import noam_lr


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(latest_checkpoint(run_dir))
    return model.state_dict()


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, make_config) -> None:
    cfg = make_config("train.max_steps=6")
    first = train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    train(make_config("train.max_steps=6", "train.seed=1"), tmp_path / "c")
    _assert_same_weights(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    c = _weights(tmp_path / "c")
    assert any(not torch.equal(c[k], v) for k, v in _weights(tmp_path / "a").items())
    assert first["step"] == 6 and first["tokens_per_s"] > 0
    strip = lambda records: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]  # noqa: E731
    assert strip(read_metrics(tmp_path / "a")) == strip(read_metrics(tmp_path / "b"))


@pytest.mark.parametrize("split_at", [8, 6], ids=["at-a-validation", "between-validations"])
def test_resume_continues_exactly(tmp_path: Path, make_config, split_at: int) -> None:
    full = train(make_config("train.max_steps=12"), tmp_path / "full")  # validates at 4, 8, 12
    split = train(make_config(f"train.max_steps={split_at}"), tmp_path / "split")  # stops (and saves) at split_at
    assert split["step"] == split_at
    resumed = train(make_config("train.max_steps=12"), tmp_path / "split", resume=True)
    assert resumed["step"] == full["step"] == 12
    _assert_same_weights(_weights(tmp_path / "full"), _weights(tmp_path / "split"))
    drop_timing = lambda records: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]  # noqa: E731
    full_records, split_records = read_metrics(tmp_path / "full"), read_metrics(tmp_path / "split")
    if split_at % 4 == 0:  # both runs validated at the same steps: every record and the best are the same
        assert (resumed["best_score"], resumed["best_step"]) == (full["best_score"], full["best_step"])
        assert drop_timing(split_records) == drop_timing(full_records)
    else:  # the split run also validated at its end, step 6, which the full run never did
        extra = [r for r in split_records if r["step"] == split_at and "valid_loss" in r]
        assert len(extra) == 1
        assert drop_timing([r for r in split_records if r not in extra]) == drop_timing(full_records)
        scores = {r["step"]: r["valid_loss"] for r in split_records if "valid_loss" in r}
        assert resumed["best_score"] == min(scores.values()) and scores[resumed["best_step"]] == resumed["best_score"]


def test_run_directory_and_metrics(tmp_path: Path, make_config, corpus_dir: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="transformer"):
        summary = train(make_config("train.max_steps=9", "train.keep_last=2"), run)
    assert summary["step"] == 9
    assert load_config(run / "config.toml") == make_config("train.max_steps=9", "train.keep_last=2")
    assert (run / "vocab" / "joint.model").read_bytes() == (corpus_dir / "vocab" / "joint.model").read_bytes()
    src_vocab, tgt_vocab = load_vocabs(run)  # the run directory alone is enough to translate
    assert src_vocab is tgt_vocab
    assert [s for s, _ in list_checkpoints(run)] == [8, 9]  # every 4 steps and at the end, the last 2 kept
    records = read_metrics(run)
    train_lines = [r for r in records if "loss" in r]
    eval_lines = [r for r in records if "valid_loss" in r]
    assert [r["step"] for r in train_lines] == [2, 4, 6, 8, 9]
    assert [r["step"] for r in eval_lines] == [4, 8, 9]
    for r in train_lines:
        assert r["loss"] > 0 and r["lr"] > 0 and r["tokens_per_s"] > 0
    for r in eval_lines:
        assert r["valid_ppl"] == pytest.approx(torch.tensor(r["valid_nll"]).exp().item(), rel=1e-6)
        assert 0.0 <= r["valid_bleu"] <= 100.0 and r["valid_loss"] > r["valid_nll"] * 0.5
    best_line = min(eval_lines, key=lambda r: r["valid_loss"])
    best_model, meta = load_model(run / "best.safetensors")
    assert meta["step"] == best_line["step"] == summary["best_step"]
    assert meta["valid_loss"] == pytest.approx(best_line["valid_loss"])
    # the model has the vocabulary's sizes and shares its embeddings (joint vocabulary)
    assert best_model.cfg.src_vocab_size == len(src_vocab) and best_model.cfg.share_embeddings
    assert (run / "train.log").read_text().count("valid_loss") == 3


def test_decay_steps_bring_the_learning_rate_down_over_the_last_updates(tmp_path: Path, make_config) -> None:
    cfg = make_config("train.max_steps=8", "train.decay_steps=4")
    train(cfg, tmp_path / "run")
    lrs = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "run") if "lr" in r}
    d, t = cfg.model.d_model, cfg.train
    assert lrs[2] == pytest.approx(noam_lr(2, d, t.warmup, t.lr_scale))  # untouched before the last 4
    assert lrs[4] == pytest.approx(noam_lr(4, d, t.warmup, t.lr_scale))
    assert lrs[6] == pytest.approx(noam_lr(6, d, t.warmup, t.lr_scale) * 3 / 4)
    assert lrs[8] == pytest.approx(noam_lr(8, d, t.warmup, t.lr_scale) / 4)


def test_recompute_trains_the_same_weights(tmp_path: Path, make_config) -> None:
    train(make_config("train.max_steps=3", "model.dropout=0.2"), tmp_path / "plain")
    train(make_config("train.max_steps=3", "model.dropout=0.2", "train.recompute=true"), tmp_path / "recomputed")
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "recomputed")
    for name in a:
        torch.testing.assert_close(b[name], a[name], msg=name)


def test_compiled_loss_trains_the_same_losses(tmp_path: Path, make_config) -> None:
    """train.compile_loss changes rounding only: the logged losses agree (weights are not compared, since
    Adam's first updates are ~lr * sign(gradient) and turn a rounding difference of a ~0 gradient into lr)."""
    train(make_config("train.max_steps=4"), tmp_path / "eager")
    train(make_config("train.max_steps=4", "train.compile_loss=true"), tmp_path / "compiled")
    eager, compiled = read_metrics(tmp_path / "eager"), read_metrics(tmp_path / "compiled")
    keys = [[k for k in r if "loss" in k or "nll" in k] for r in eager]
    assert [r["step"] for r in eager] == [r["step"] for r in compiled] and all(keys)
    for a, b, names in zip(eager, compiled, keys):
        for k in names:
            assert b[k] == pytest.approx(a[k], rel=1e-4), (a["step"], k)


def test_fresh_run_refuses_a_used_run_directory(tmp_path: Path, make_config) -> None:
    train(make_config("train.max_steps=4"), tmp_path / "run")
    with pytest.raises(FileExistsError, match="already holds checkpoints"):
        train(make_config("train.max_steps=4"), tmp_path / "run")
    # resuming a finished run does nothing more
    assert train(make_config("train.max_steps=4"), tmp_path / "run", resume=True)["step"] == 4


def test_training_reduces_the_loss(tmp_path: Path, make_config, caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config("train.max_steps=120", "train.eval_every=60", "train.save_every=60", "train.log_every=10",
                      "model.dropout=0.0")
    with caplog.at_level(logging.INFO, logger="transformer"):
        summary = train(cfg, tmp_path / "run")
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert losses[-1] < losses[0] - 0.5, losses
    valid = [r["valid_loss"] for r in read_metrics(tmp_path / "run") if "valid_loss" in r]
    assert len(valid) == 2 and valid[1] < valid[0]
    logging.getLogger(__name__).info("tiny model throughput: %.0f target tokens/s", summary["tokens_per_s"])


def test_update_best_and_early_stopping_bookkeeping() -> None:
    by_loss, by_bleu = TrainConfig(best_metric="loss"), TrainConfig(best_metric="bleu")
    p = Progress(step=1)
    assert update_best(p, {"valid_loss": 2.0, "valid_bleu": 1.0}, by_loss)
    p.step = 2
    assert not update_best(p, {"valid_loss": 2.5, "valid_bleu": 9.0}, by_loss) and p.bad_evals == 1
    p.step = 3
    assert update_best(p, {"valid_loss": 1.5, "valid_bleu": 0.0}, by_loss)
    assert (p.best_score, p.best_step, p.bad_evals) == (1.5, 3, 0)
    q = Progress(step=1)
    assert update_best(q, {"valid_loss": 2.0, "valid_bleu": 1.0}, by_bleu)
    assert not update_best(q, {"valid_loss": 1.0, "valid_bleu": 1.0}, by_bleu)  # equal is not better
    assert q.bad_evals == 1


@pytest.mark.parametrize(("patience", "losses", "stop_at"), [
    (1, [3.0, 2.0, 2.5, 1.0, 0.5], 6),  # the 3rd validation is worse than the 2nd: stop at step 3 x 2
    (2, [3.0, 2.0, 2.5, 1.5, 2.1, 2.2, 1.0], 12),  # better at the 4th, then two worse: the 6th
    (2, [3.0, 2.0, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4, 1.3], 20),  # equal is not better, but never twice: no stop
])
def test_early_stopping(tmp_path: Path, make_config, monkeypatch: pytest.MonkeyPatch, patience: int,
                        losses: list[float], stop_at: int) -> None:
    """Validation returns scripted losses, so when the run stops is known exactly."""
    import transformer.training.loop as loop

    scripted = iter(losses)
    monkeypatch.setattr(loop, "validate", lambda *args: {"valid_loss": next(scripted)})
    cfg = make_config("train.max_steps=20", f"train.patience={patience}", "train.eval_every=2",
                      "train.save_every=100")
    summary = train(cfg, tmp_path / "run")
    evals = [r["valid_loss"] for r in read_metrics(tmp_path / "run") if "valid_loss" in r]
    assert summary["step"] == stop_at and evals == losses[: stop_at // 2]
    assert summary["stopped_early"] == (stop_at < 20)
    assert summary["best_score"] == min(evals) and summary["best_step"] == 2 * (evals.index(min(evals)) + 1)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [stop_at]  # saved on stopping
    assert load_model(tmp_path / "run" / "best.safetensors")[1]["step"] == summary["best_step"]


def test_time_budget_stops_training_and_carries_over_resumes(tmp_path: Path, make_config) -> None:
    # a budget of 1e-7 minutes (6 us) is spent by the first step, however fast the machine (a 6 ms budget was
    # not always): the run stops there, validates and saves
    cfg = make_config("train.max_steps=40", "train.max_minutes=1e-7", "train.eval_every=100",
                      "train.save_every=100")
    summary = train(cfg, tmp_path / "run")
    assert summary["out_of_time"] and summary["step"] == 1 and summary["elapsed_s"] >= 6e-6
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [1]
    assert [r["step"] for r in read_metrics(tmp_path / "run") if "valid_loss" in r] == [1]
    # resuming counts the time already spent: with the same budget nothing more is trained ...
    again = train(cfg, tmp_path / "run", resume=True)
    assert again["out_of_time"] and again["step"] == 1
    # ... and a larger budget continues the run
    more = make_config("train.max_steps=3", "train.max_minutes=10", "train.eval_every=100", "train.save_every=100")
    longer = train(more, tmp_path / "run", resume=True)
    assert not longer["out_of_time"] and longer["step"] == 3 and longer["elapsed_s"] > summary["elapsed_s"]


def test_accumulation_chunked_loss_untied_output_and_bf16(tmp_path: Path, make_config) -> None:
    """The other code paths, each checked against what it must equal."""
    base = ("train.max_steps=3", "train.log_every=1", "train.clip_norm=0.1", "model.tie_output=false")
    losses = {}
    for name, extra in {"whole": ["train.loss_chunk_size=0"], "chunks of 7": ["train.loss_chunk_size=7"],
                        "bf16": ["train.bf16=true"], "accumulate 2": ["train.accumulate=2"]}.items():
        summary = train(make_config(*base, *extra), tmp_path / name)
        assert summary["step"] == 3 and json.loads(json.dumps(summary)) == summary
        losses[name] = [r["loss"] for r in read_metrics(tmp_path / name) if "loss" in r]
    # the loss in chunks is the loss at once (float32, summed in another order)
    assert losses["chunks of 7"] == pytest.approx(losses["whole"], rel=1e-5)
    # bf16 autocast: the same losses to bf16's precision (3 significant digits), not the same numbers
    assert losses["bf16"] == pytest.approx(losses["whole"], rel=2e-2) and losses["bf16"] != losses["whole"]
    # accumulation: two batches per update, so 3 updates used 6 batches; the first update's loss is the mean
    # over its two batches, so it differs from the one-batch run's
    position = lambda name: [load_training_state(latest_checkpoint(tmp_path / name))["progress"][key]  # noqa: E731
                             for key in ("epoch", "batch_in_epoch")]
    assert position("whole") == [0, 3] and position("accumulate 2") == [0, 6]
    assert losses["accumulate 2"][0] != losses["whole"][0]
    # an untied output projection is its own parameter, saved and loaded as such
    model, meta = load_model(tmp_path / "whole")
    assert meta["step"] == 3 and not model.cfg.tie_output
    assert model.output_weight.data_ptr() != model.tgt_embed.weight.data_ptr()
    assert not torch.equal(model.output_weight, model.tgt_embed.weight)
