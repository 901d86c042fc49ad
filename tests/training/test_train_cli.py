"""``transformer train`` end to end on a tiny corpus, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transformer.cli import main
from transformer.data import load_vocabs, prepare, source_ids
from transformer.run_dir import list_checkpoints, load_model
from transformer.training.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def _sets(values: list[str]) -> list[str]:
    return [item for value in values for item in ("--set", value)]


def test_train_command_end_to_end(tmp_path: Path, corpus_dir: Path, overrides) -> None:
    run = tmp_path / "run"
    args = ["train", "--config", str(REPO / "configs" / "demo.toml"), "--data", str(corpus_dir), "--run-dir", str(run),
            *_sets(overrides("train.max_steps=8", "train.keep_last=1")[1:])]  # [0] is data.dir: --data says it
    assert main(args) == 0
    assert [s for s, _ in list_checkpoints(run)] == [8]
    assert {"config.toml", "vocab", "checkpoints", "best.safetensors", "metrics.jsonl", "train.log"} <= {
        p.name for p in run.iterdir()}
    assert max(r["step"] for r in read_metrics(run)) == 8
    # the run directory is all a translator needs
    model, meta = load_model(run)
    assert meta["step"] == 8 and model.cfg.d_model == 32  # the --set beat the config file's 128
    src_vocab, tgt_vocab = load_vocabs(run)
    src = torch.tensor([source_ids(src_vocab.encode("red cat dog"))])
    out = model.generate(src, beam_size=2, max_len=6)
    assert out.shape[0] == 1 and out.shape[1] <= 6 and isinstance(tgt_vocab.decode(out[0].tolist()), str)
    # resuming a finished run is a no-op that succeeds; a fresh start in the same directory is refused
    assert main(["train", "--run-dir", str(run), "--resume"]) == 0
    assert main(args) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "train.max_step=3"], "unknown field train.max_step"),
        (["--set", "model.d_model=abc"], "model.d_model: expected int"),
        (["--config", "missing.toml"], "No such file"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str],
                                          message: str) -> None:
    assert main(["train", "--run-dir", str(tmp_path / "run"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("transformer train: error: bad config:") and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_unprepared_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(tmp_path / "nothing"), "--run-dir", str(tmp_path / "run")]) == 2
    assert "not a prepared data directory" in capsys.readouterr().err


def test_help_describes_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--config", "--data", "--run-dir", "--set", "--resume", "--init-from"):
        assert option in text
    assert "torchrun" in text


def test_init_from_one_of_our_runs(tmp_path: Path, corpus_dir: Path, overrides, caplog, capsys) -> None:
    """``--init-from RUN``: RUN's model (a --set that would not fit its weights warned about and ignored; the
    dropout taken), RUN's weights as step 0, a fresh optimizer; resuming the new run does not start over; data
    encoded with another vocabulary is one error naming the weights file."""
    first = tmp_path / "first"
    assert main(["train", "--data", str(corpus_dir), "--run-dir", str(first),
                 *_sets(overrides("train.max_steps=4")[1:])]) == 0
    tuned = tmp_path / "tuned"
    args = ["train", "--data", str(corpus_dir), "--run-dir", str(tuned), "--init-from", str(first),
            *_sets(overrides("train.max_steps=1", "train.lr_scale=1e-9", "model.dropout=0.0", "model.d_ff=128")[1:])]
    assert main(args) == 0
    assert "model.d_ff=128 would not fit the weights" in caplog.text
    before, _ = load_model(first)
    after, meta = load_model(tuned)
    assert meta["step"] == 1 and after.cfg.d_ff == before.cfg.d_ff == 64 and after.cfg.dropout == 0.0
    for (name, a), b in zip(after.state_dict().items(), before.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)  # one step at a learning rate of ~0
    assert main(["train", "--run-dir", str(tuned), "--resume", "--set", "train.max_steps=3"]) == 0
    assert [s for s, _ in list_checkpoints(tuned)][-1] == 3

    other = tmp_path / "other_vocab"
    prepare(*_raw_pair(tmp_path), other, vocab_size=30)
    capsys.readouterr()
    assert main(["train", "--data", str(other), "--run-dir", str(tmp_path / "bad"), "--init-from", str(first),
                 *_sets(overrides("train.max_steps=1")[1:])]) == 2
    err = capsys.readouterr().err
    assert "do not fit this run's model" in err and "--vocab-from" in err and "best.safetensors" in err


def _raw_pair(tmp_path: Path) -> tuple[Path, Path]:
    src, tgt = tmp_path / "o.src", tmp_path / "o.tgt"
    src.write_text("".join(f"word{i} other{i % 7}\n" for i in range(60)))
    tgt.write_text("".join(f"other{i % 7} word{i}\n" for i in range(60)))
    return src, tgt
