"""Subword vocabularies: SentencePiece models (unigram or BPE) with the project's fixed special ids.

Special ids are fixed at training time and checked at load time: ``pad=0, bos=1, eos=2, unk=3``, the
ids the model and the batching code assume. Text goes through :func:`~transformer.data.corpus.normalize_line`
(NFC, whitespace) before SentencePiece sees it, both when training and when encoding, and SentencePiece
itself is told not to normalise again (``normalization_rule_name="identity"``): so
``decode(encode(text)) == normalize_line(text)`` for any text whose characters are in the vocabulary
(``character_coverage=1.0`` keeps every character of the training text). Characters never seen in
training map to ``unk`` and decode as `` ⁇ ``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import sentencepiece as spm

from .corpus import normalize_line, read_lines
from .marian_vocab import MarianVocab, load_marian_vocabs

logger = logging.getLogger(__name__)

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe")
# SentencePiece skips (silently) training sentences longer than this many bytes; its default is 4192.
_MAX_SENTENCE_BYTES = 1 << 16


def _training_sentences(texts: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Normalised non-empty sentences: ``str`` items are sentences, path-like items are files to read."""
    for item in texts:
        lines = read_lines(item) if isinstance(item, os.PathLike) else [normalize_line(item)]
        yield from (line for line in lines if line)


class Vocab:
    """A trained SentencePiece model: text <-> subword ids.

    Attributes:
        path: the ``.model`` file.
    """

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, processor: spm.SentencePieceProcessor, path: Path) -> None:
        specials = (processor.pad_id(), processor.bos_id(), processor.eos_id(), processor.unk_id())
        if specials != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise ValueError(
                f"{path}: special ids (pad, bos, eos, unk) are {specials}, "
                f"expected {(PAD_ID, BOS_ID, EOS_ID, UNK_ID)}; train the vocabulary with Vocab.train"
            )
        self._sp = processor
        self.path = path

    @classmethod
    def train(
        cls,
        texts: Iterable[str | os.PathLike[str]],
        model_prefix: str | os.PathLike[str],
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        seed: int = 0,
    ) -> Vocab:
        """Train a SentencePiece model on ``texts`` and write ``{model_prefix}.model`` / ``.vocab``.

        Args:
            texts: sentences (``str``) and/or files (``pathlib.Path``, read with ``read_lines``), mixed
                freely. Empty lines are skipped.
            model_prefix: output path without extension; its directory is created if needed.
            vocab_size: the target size, including the 4 special pieces. The limit is soft
                (``hard_vocab_limit=False``): a small corpus may give fewer pieces, see ``len(vocab)``.
            model_type: ``"unigram"`` (the SentencePiece default) or ``"bpe"``.
            character_coverage: fraction of characters covered by the vocabulary; 1.0 keeps them all.
            seed: seed of SentencePiece's random generator. Training is single-threaded, so the same
                inputs and seed give a byte-identical model.

        Raises:
            ValueError: bad arguments, no training text, or a vocabulary size SentencePiece rejects.
        """
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
        if vocab_size <= UNK_ID + 1:
            raise ValueError(f"vocab_size must be larger than the {UNK_ID + 1} special pieces, got {vocab_size}")
        prefix = Path(model_prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        # SentencePiece trains from a file. Its name is recorded inside the model, so it is derived from
        # the prefix (not random): the same inputs, prefix and seed give a byte-identical model file.
        sentences_file = prefix.with_name(f".{prefix.name}.sentences.txt")
        n_sentences = 0
        try:
            with open(sentences_file, "w", encoding="utf-8") as f:
                for sentence in _training_sentences(texts):
                    f.write(sentence + "\n")
                    n_sentences += 1
            if n_sentences == 0:
                raise ValueError("no training text for the vocabulary (all sentences are empty)")
            spm.set_random_generator_seed(seed)
            try:
                spm.SentencePieceTrainer.train(
                    input=str(sentences_file),
                    model_prefix=str(prefix),
                    vocab_size=vocab_size,
                    model_type=model_type,
                    character_coverage=character_coverage,
                    pad_id=PAD_ID,
                    bos_id=BOS_ID,
                    eos_id=EOS_ID,
                    unk_id=UNK_ID,
                    hard_vocab_limit=False,
                    normalization_rule_name="identity",
                    max_sentence_length=_MAX_SENTENCE_BYTES,
                    input_sentence_size=0,
                    shuffle_input_sentence=False,
                    num_threads=1,
                    minloglevel=2,
                )
            except RuntimeError as exc:
                raise ValueError(f"SentencePiece could not train {prefix}.model: {exc}") from None
        finally:
            sentences_file.unlink(missing_ok=True)
        vocab = cls.load(prefix.with_name(prefix.name + ".model"))
        logger.info(
            "trained %s vocabulary %s: %d pieces, %d sentences", model_type, vocab.path, len(vocab), n_sentences
        )
        return vocab

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        """Load a ``.model`` file written by :meth:`train`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a SentencePiece model, or its special ids are not the project's.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: vocabulary model not found")
        processor = spm.SentencePieceProcessor()
        try:
            processor.load(str(path))
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{path}: not a SentencePiece model ({exc})") from None
        return cls(processor, path)

    def encode(self, text: str) -> list[int]:
        """Subword ids of ``text`` (normalised first); no BOS/EOS are added."""
        return self._sp.encode(normalize_line(text))

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        """:meth:`encode` for many texts at once (one call into SentencePiece, much faster)."""
        return self._sp.encode([normalize_line(t) for t in texts])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``. Pad, BOS and EOS are skipped; ids outside the vocabulary decode as unknown."""
        size = len(self)
        kept = [int(i) for i in ids if int(i) not in (PAD_ID, BOS_ID, EOS_ID)]
        return self._sp.decode([i if 0 <= i < size else UNK_ID for i in kept])

    def pieces(self, text: str) -> list[str]:
        """The subword strings of ``text`` (``▁`` marks a word start), aligned with :meth:`encode`."""
        return self._sp.encode(normalize_line(text), out_type=str)

    def id_to_piece(self, i: int) -> str:
        """The subword string of one id (``<pad>``, ``<s>``, ``</s>``, ``<unk>`` for the specials)."""
        return self._sp.id_to_piece(int(i))

    def __len__(self) -> int:
        return self._sp.get_piece_size()

    def __repr__(self) -> str:
        return f"Vocab(path={str(self.path)!r}, size={len(self)})"


def same_ids(a: Vocab | MarianVocab, b: Vocab | MarianVocab) -> bool:
    """Whether two vocabularies number the same pieces alike: one embedding table can serve both (a Marian
    checkpoint's shared vocabulary cuts source and target text with two SentencePiece models, one numbering)."""
    return a is b or (isinstance(a, MarianVocab) and isinstance(b, MarianVocab) and a.encoder == b.encoder)


def load_vocabs(data_dir: str | os.PathLike[str]) -> tuple[Vocab, Vocab] | tuple[MarianVocab, MarianVocab]:
    """The (source, target) vocabularies of a prepared data directory or a run directory; the same object twice
    when joint.

    Looks for ``{data_dir}/vocab/joint.model``, else ``vocab/src.model`` and ``vocab/tgt.model`` (ours), else
    ``vocab/vocab.json`` with ``source.spm`` and ``target.spm`` (a Marian checkpoint's, ``transformer import``).

    Raises:
        FileNotFoundError: none of these layouts is present.
    """
    vocab_dir = Path(data_dir) / "vocab"
    joint = vocab_dir / "joint.model"
    if joint.is_file():
        vocab = Vocab.load(joint)
        return vocab, vocab
    src, tgt = vocab_dir / "src.model", vocab_dir / "tgt.model"
    if src.is_file() and tgt.is_file():
        return Vocab.load(src), Vocab.load(tgt)
    if (vocab_dir / "vocab.json").is_file():
        return load_marian_vocabs(vocab_dir, separate=(vocab_dir / "target_vocab.json").is_file())
    raise FileNotFoundError(
        f"{data_dir}: no vocabulary found (expected vocab/joint.model, or vocab/src.model and vocab/tgt.model, "
        "or a Marian vocab/vocab.json); run `transformer prepare` first"
    )
