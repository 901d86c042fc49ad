"""prepare() end to end on a small corpus, and the EncodedCorpus round trip."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from transformer.data.batching import TokenBatchSampler, collate
from transformer.data.corpus import CorpusError, sha256_file
from transformer.data.prepare import EncodedCorpus, PreparedData, prepare
from transformer.data.vocab import load_vocabs
from transformer.demo.numbers import english_words, german_words

TRAIN = list(range(0, 4000, 13))
VALID = list(range(5, 4000, 97))


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    en = [english_words(n) for n in TRAIN] + ["", "x" * 300]  # one empty pair, one over-long pair
    de = [german_words(n) for n in TRAIN] + ["leer", "y"]
    return {
        "train_src": write_lines(tmp_path / "train.en", en),
        "train_tgt": write_lines(tmp_path / "train.de", de),
        "valid_src": write_lines(tmp_path / "valid.en", [english_words(n) + "\t" for n in VALID]),
        "valid_tgt": write_lines(tmp_path / "valid.de", [german_words(n) for n in VALID]),
    }


def test_prepare_end_to_end_and_load_round_trip(
    tmp_path: Path, corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "prepared"
    with caplog.at_level(logging.WARNING, logger="transformer.data.prepare"):
        prepared = prepare(out_dir=out, vocab_size=100, max_len_chars=200, **corpus)
    assert "train: dropped 2 of 310 sentence pairs (empty: 1, too_long: 1, too_many_tokens: 0)" in caplog.text

    assert isinstance(prepared, PreparedData) and prepared.joint and prepared.src_vocab is prepared.tgt_vocab
    assert prepared.splits == {"train": len(TRAIN), "valid": len(VALID)}
    assert (out / "vocab" / "joint.model").is_file()
    manifest = json.loads((out / "prepare.json").read_text(encoding="utf-8"))
    assert manifest["joint"] is True and manifest["vocab"]["src"]["size"] == len(prepared.src_vocab) == 100
    assert manifest["splits"]["train"]["dropped"] == {"empty": 1, "too_long": 1, "too_many_tokens": 0}
    assert manifest["splits"]["train"]["lines"] == len(TRAIN) + 2
    assert manifest["splits"]["train"]["files"]["src"]["sha256"] == sha256_file(corpus["train_src"])
    assert manifest["splits"]["valid"]["files"]["tgt"]["path"] == str(corpus["valid_tgt"].resolve())

    train = EncodedCorpus.load(out, "train")
    vocab = prepared.src_vocab
    assert len(train) == len(TRAIN) and train.raw_src is None
    for i in (0, 1, len(TRAIN) - 1, -1):
        src, tgt = train.pair(i)
        n = TRAIN[i]
        assert (vocab.decode(src), vocab.decode(tgt)) == (english_words(n), german_words(n))
    assert train.src_lengths.tolist() == [len(vocab.encode(english_words(n))) for n in TRAIN]
    assert int(train.tgt_lengths.sum()) == manifest["splits"]["train"]["tgt_tokens"]

    valid = EncodedCorpus.load(out, "valid")
    assert valid.raw_src == [english_words(n) for n in VALID]  # normalised: the tab is gone
    assert valid.raw_tgt == [german_words(n) for n in VALID]
    assert [vocab.decode(valid.pair(i)[1]) for i in range(len(valid))] == valid.raw_tgt

    # The cached arrays are plain numpy files, no pickle.
    tokens = np.load(out / "train.src.tokens.npy", allow_pickle=False)
    assert tokens.dtype == np.int32 and tokens.min() >= 4
    with pytest.raises(IndexError):
        train.pair(len(train))

    # The pieces fit together: sampler over the cached lengths, collate of the cached pairs.
    sampler = TokenBatchSampler(train.src_lengths, train.tgt_lengths, max_tokens=200)
    batch = collate(train.pairs(sampler.batches(0)[0]))
    assert batch.src.numel() <= 200

    reopened = PreparedData.load(out)
    assert reopened.splits == prepared.splits and reopened.joint
    assert reopened.src_vocab.encode("seven") == vocab.encode("seven")


def test_prepare_separate_vocabs_and_token_limit(
    tmp_path: Path, corpus: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "prepared"
    prepare(out_dir=out, vocab_size=100, **corpus)  # joint first, then re-prepared separately
    write_lines(out / "valid.en", ["a file of the user's"])
    with caplog.at_level(logging.WARNING):
        prepared = prepare(
            corpus["train_src"], corpus["train_tgt"], out, vocab_size=80, joint=False, max_tokens_per_sentence=8
        )
    assert not prepared.joint and prepared.src_vocab.path.name == "src.model"
    assert not (out / "vocab" / "joint.model").exists()  # the stale joint vocabulary is gone
    assert [p.name for p in out.glob("valid.*")] == ["valid.en"]  # so is the stale valid split (not user files)
    src_vocab, tgt_vocab = load_vocabs(out)
    assert (src_vocab.path.name, tgt_vocab.path.name) == ("src.model", "tgt.model")
    train = EncodedCorpus.load(out, "train")
    assert max(train.src_lengths.max(), train.tgt_lengths.max()) <= 8
    dropped = json.loads((out / "prepare.json").read_text())["splits"]["train"]["dropped"]
    assert dropped["empty"] == 1 and dropped["too_many_tokens"] > 0
    assert len(train) == len(TRAIN) + 1 - dropped["too_many_tokens"]  # no max_len_chars this time
    assert f"too_many_tokens: {dropped['too_many_tokens']}" in caplog.text
    with pytest.raises(FileNotFoundError, match="no 'valid' split"):
        EncodedCorpus.load(out, "valid")


def test_prepare_reports_bad_input(tmp_path: Path, corpus: dict[str, Path]) -> None:
    out = tmp_path / "out"
    short = write_lines(tmp_path / "short.de", ["eins"])
    with pytest.raises(CorpusError, match="short.de"):
        prepare(corpus["train_src"], short, out)
    bad = tmp_path / "bad.en"
    bad.write_bytes(b"ok\n\xfe\n")
    with pytest.raises(CorpusError, match=r"bad\.en:2: not valid UTF-8"):
        prepare(corpus["train_src"], corpus["train_tgt"], out, valid_src=bad, valid_tgt=short)
    with pytest.raises(ValueError, match="both"):
        prepare(corpus["train_src"], corpus["train_tgt"], out, valid_src=corpus["valid_src"])
    empty_pairs = write_lines(tmp_path / "blank.en", [""] * 3)
    with pytest.raises(CorpusError, match="no usable sentence pairs"):
        prepare(empty_pairs, write_lines(tmp_path / "three.de", ["a", "b", "c"]), out)
    with pytest.raises(CorpusError, match="at most 1 subwords"):
        prepare(corpus["train_src"], corpus["train_tgt"], out, vocab_size=60, max_tokens_per_sentence=1)
    assert not (out / "prepare.json").exists()
    with pytest.raises(FileNotFoundError, match="transformer prepare"):
        EncodedCorpus.load(out, "train")


@pytest.mark.parametrize("joint", [True, False])
def test_prepare_with_the_vocabulary_of_a_run(tmp_path: Path, corpus: dict[str, Path], joint: bool) -> None:
    """``vocab_from``: a run's vocabularies, copied as they are, encode the new corpus; none is trained."""
    first = prepare(out_dir=tmp_path / "first", vocab_size=90, joint=joint, **corpus)
    run = tmp_path / "run"
    (run / "vocab").mkdir(parents=True)
    for path in (tmp_path / "first" / "vocab").iterdir():
        (run / "vocab" / path.name).write_bytes(path.read_bytes())
    new = tmp_path / "new"
    new.mkdir()
    more = {"train_src": write_lines(new / "train.en", [english_words(n) for n in range(7, 300, 7)]),
            "train_tgt": write_lines(new / "train.de", [german_words(n) for n in range(7, 300, 7)])}
    prepared = prepare(out_dir=tmp_path / "again", vocab_size=30, joint=not joint, vocab_from=run, **more)
    assert prepared.joint == joint  # the run's, not the argument's
    for name in {p.name for p in (run / "vocab").iterdir()}:
        assert (tmp_path / "again" / "vocab" / name).read_bytes() == (run / "vocab" / name).read_bytes()
    assert len(prepared.src_vocab) == len(first.src_vocab) and len(prepared.tgt_vocab) == len(first.tgt_vocab)
    src, tgt = EncodedCorpus.load(tmp_path / "again", "train").pair(0)
    assert src == first.src_vocab.encode(english_words(7)) and tgt == first.tgt_vocab.encode(german_words(7))
    manifest = json.loads((tmp_path / "again" / "prepare.json").read_text(encoding="utf-8"))
    assert manifest["vocab_from"] == str(run.resolve())
    with pytest.raises(FileNotFoundError, match="no vocab/ directory"):
        prepare(out_dir=tmp_path / "third", vocab_from=tmp_path / "first" / "nothing", **more)
