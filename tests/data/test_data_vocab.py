"""SentencePiece vocabularies: fixed special ids, round trips, determinism, the joint/separate layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from transformer.data.vocab import Vocab, load_vocabs
from transformer.demo.numbers import english_words, german_words

TEXTS = [english_words(n) for n in range(0, 3000, 7)] + [german_words(n) for n in range(0, 3000, 7)]
TEXTS += ["Ein Mann mit Hut läuft über die Straße.", "A man in a hat walks across the street."]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Vocab:
    return Vocab.train(TEXTS, tmp_path_factory.mktemp("vocab") / "joint", vocab_size=120)


def test_special_ids_are_fixed(vocab: Vocab) -> None:
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert [vocab.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert len(vocab) == 120
    assert vocab.path.name == "joint.model" and vocab.path.is_file()


def test_encode_decode_round_trip(vocab: Vocab) -> None:
    for text in [*TEXTS[::25], "Ein Mann mit Hut läuft über die Straße.", "two thousand dreihundert"]:
        ids = vocab.encode(text)
        assert ids and all(4 <= i < len(vocab) for i in ids)  # no specials, no unknowns
        assert vocab.decode(ids) == text
    # The input is normalised the same way as corpus lines.
    assert vocab.encode("  two\tthousand\u00a0one ") == vocab.encode("two thousand one")


def test_decode_skips_pad_bos_eos_and_maps_unknown_ids(vocab: Vocab) -> None:
    ids = vocab.encode("seven hundred")
    assert vocab.decode([1, *ids, 2, 0, 0]) == "seven hundred"
    assert vocab.decode([]) == ""
    assert vocab.decode([*ids, len(vocab) + 5]) == vocab.decode([*ids, vocab.unk_id])


def test_unseen_characters_become_unk(vocab: Vocab) -> None:
    ids = vocab.encode("seven 字")
    assert vocab.unk_id in ids
    assert "⁇" in vocab.decode(ids)


def test_pieces_align_with_ids(vocab: Vocab) -> None:
    text = "einhundertdreiundzwanzig"
    pieces, ids = vocab.pieces(text), vocab.encode(text)
    assert len(pieces) == len(ids)
    assert [vocab.id_to_piece(i) for i in ids] == pieces
    assert "".join(pieces).replace("▁", " ").strip() == text


def test_training_is_deterministic_and_reads_files(tmp_path: Path) -> None:
    a = Vocab.train(TEXTS, tmp_path / "a" / "v", vocab_size=100, seed=1)
    b = Vocab.train(TEXTS, tmp_path / "b" / "v", vocab_size=100, seed=1)
    pieces = [a.id_to_piece(i) for i in range(len(a))]
    assert pieces == [b.id_to_piece(i) for i in range(len(b))]
    c = Vocab.train(TEXTS, tmp_path / "a" / "v", vocab_size=100, seed=1)  # same prefix: same bytes
    assert a.path.read_bytes() == c.path.read_bytes()
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    d = Vocab.train([corpus], tmp_path / "d" / "v", vocab_size=100, seed=1)  # a Path is a file to read
    assert [d.id_to_piece(i) for i in range(len(d))] == pieces
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["v.model", "v.vocab"]  # no temp files left


def test_bpe_and_soft_vocab_limit(tmp_path: Path) -> None:
    bpe = Vocab.train(TEXTS, tmp_path / "bpe", vocab_size=100, model_type="bpe")
    assert bpe.decode(bpe.encode("nine hundred ninety-nine")) == "nine hundred ninety-nine"
    tiny = Vocab.train(["ab ba", "ab"], tmp_path / "tiny", vocab_size=500)  # fewer pieces than asked: fine
    assert 4 < len(tiny) < 500
    assert tiny.decode(tiny.encode("ba ab")) == "ba ab"


def test_training_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_type"):
        Vocab.train(TEXTS, tmp_path / "x", 100, model_type="word")
    with pytest.raises(ValueError, match="vocab_size"):
        Vocab.train(TEXTS, tmp_path / "x", 4)
    with pytest.raises(ValueError, match="no training text"):
        Vocab.train(["", "   "], tmp_path / "x", 100)
    with pytest.raises(ValueError, match="SentencePiece could not train"):
        Vocab.train(TEXTS, tmp_path / "x", 10)  # fewer pieces than distinct characters


def test_load_rejects_foreign_models(tmp_path: Path, vocab: Vocab) -> None:
    assert Vocab.load(vocab.path).encode("one") == vocab.encode("one")
    with pytest.raises(FileNotFoundError):
        Vocab.load(tmp_path / "nope.model")
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        Vocab.load(garbage)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TEXTS), encoding="utf-8")
    spm.SentencePieceTrainer.train(  # SentencePiece's own default ids: unk=0, bos=1, eos=2, no pad
        input=str(corpus), model_prefix=str(tmp_path / "foreign"), vocab_size=60, minloglevel=2
    )
    with pytest.raises(ValueError, match="special ids"):
        Vocab.load(tmp_path / "foreign.model")


def test_load_vocabs_joint_and_separate(tmp_path: Path) -> None:
    joint_dir, separate_dir = tmp_path / "j", tmp_path / "s"
    Vocab.train(TEXTS, joint_dir / "vocab" / "joint", 100)
    src, tgt = load_vocabs(joint_dir)
    assert src is tgt
    Vocab.train(TEXTS[:300], separate_dir / "vocab" / "src", 60)
    Vocab.train(TEXTS[300:], separate_dir / "vocab" / "tgt", 70)
    src, tgt = load_vocabs(separate_dir)
    assert src is not tgt and (len(src), len(tgt)) == (60, 70)
    with pytest.raises(FileNotFoundError, match="transformer prepare"):
        load_vocabs(tmp_path / "empty")
