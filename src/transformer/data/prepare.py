"""Preparing a parallel corpus for training: validate, clean, train the vocabulary, encode, cache.

Layout of a prepared directory ``DIR``::

    DIR/prepare.json                  what was done: settings, vocab sizes, counts, dropped counts,
                                      the source files and their SHA-256 (written last: its presence
                                      means the directory is complete)
    DIR/vocab/joint.model             one shared vocabulary (joint=True), or
    DIR/vocab/src.model, tgt.model    one per language (joint=False)
    DIR/{split}.{side}.tokens.npy     int32, all subword ids of the split concatenated (no specials)
    DIR/{split}.{side}.offsets.npy    int64, n + 1 offsets: sentence i is tokens[offsets[i]:offsets[i + 1]]
    DIR/valid.{side}.txt              the validation text (normalised), the references for BLEU

with ``split`` in ``train``/``valid`` and ``side`` in ``src``/``tgt``. Arrays are plain ``np.save``
files, loaded with ``allow_pickle=False`` (and memory-mapped).

Cleaning: training pairs with an empty side, a side longer than ``max_len_chars`` characters or
more than ``max_tokens_per_sentence`` subwords are dropped; validation pairs only when a side is
empty (its references are kept whole otherwise). Every drop is counted, logged as a warning and
recorded in ``prepare.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .corpus import CorpusError, clean_pairs, read_parallel, sha256_file
from .vocab import MODEL_TYPES, Vocab, load_vocabs, same_ids

logger = logging.getLogger(__name__)

MANIFEST = "prepare.json"
SIDES = ("src", "tgt")
FORMAT_VERSION = 1


@dataclass
class PreparedData:
    """A prepared data directory.

    Attributes:
        dir: the directory.
        src_vocab: the source vocabulary.
        tgt_vocab: the target vocabulary (the same object as ``src_vocab`` when joint).
        splits: number of sentence pairs of each prepared split (``"train"``, maybe ``"valid"``).
        manifest: the content of ``prepare.json``.
    """

    dir: Path
    src_vocab: Vocab
    tgt_vocab: Vocab
    splits: dict[str, int]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def joint(self) -> bool:
        return self.src_vocab is self.tgt_vocab

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> PreparedData:
        """Open a directory written by :func:`prepare`.

        Raises:
            FileNotFoundError: no ``prepare.json`` (not prepared, or preparation did not finish).
        """
        data_dir = Path(data_dir)
        manifest = _read_manifest(data_dir)
        src, tgt = load_vocabs(data_dir)  # ours (joint or not), or a Marian run's (prepare --vocab-from)
        splits = {name: info["pairs"] for name, info in manifest["splits"].items()}
        return cls(data_dir, src, tgt, splits, manifest)


def _read_manifest(data_dir: Path) -> dict[str, Any]:
    path = data_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{data_dir}: not a prepared data directory (no {MANIFEST}); run `transformer prepare`")
    return json.loads(path.read_text(encoding="utf-8"))


class EncodedCorpus:
    """One encoded split of a prepared directory: sentence pairs of subword ids, without specials.

    Attributes:
        src_lengths: (N,) int64, subword count of each source sentence.
        tgt_lengths: (N,) int64, subword count of each target sentence.
        raw_src, raw_tgt: the (normalised) text of each sentence for the valid split, else None.
    """

    def __init__(
        self,
        src_tokens: np.ndarray,
        src_offsets: np.ndarray,
        tgt_tokens: np.ndarray,
        tgt_offsets: np.ndarray,
        raw_src: list[str] | None = None,
        raw_tgt: list[str] | None = None,
    ) -> None:
        if len(src_offsets) != len(tgt_offsets) or len(src_offsets) < 1:
            raise ValueError(f"offset arrays disagree: {len(src_offsets)} source vs {len(tgt_offsets)} target")
        n = len(src_offsets) - 1
        for raw in (raw_src, raw_tgt):
            if raw is not None and len(raw) != n:
                raise ValueError(f"{len(raw)} raw sentences for {n} encoded ones")
        self._tokens = (src_tokens, tgt_tokens)
        self._offsets = (np.asarray(src_offsets, dtype=np.int64), np.asarray(tgt_offsets, dtype=np.int64))
        self.src_lengths = np.diff(self._offsets[0])
        self.tgt_lengths = np.diff(self._offsets[1])
        self.raw_src = raw_src
        self.raw_tgt = raw_tgt

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str], split: str) -> EncodedCorpus:
        """Load ``split`` (``"train"`` or ``"valid"``) of a prepared directory; token arrays are memory-mapped.

        Raises:
            FileNotFoundError: the directory is not prepared or has no such split.
        """
        data_dir = Path(data_dir)
        manifest = _read_manifest(data_dir)
        if split not in manifest["splits"]:
            raise FileNotFoundError(f"{data_dir}: no {split!r} split (prepared: {', '.join(manifest['splits'])})")
        arrays = [
            np.load(data_dir / f"{split}.{side}.{kind}.npy", mmap_mode="r", allow_pickle=False)
            for side in SIDES
            for kind in ("tokens", "offsets")
        ]
        raw = [None, None]
        if manifest["splits"][split].get("raw_text"):
            raw = [_read_text(data_dir / f"{split}.{side}.txt") for side in SIDES]
        return cls(*arrays, raw_src=raw[0], raw_tgt=raw[1])

    def __len__(self) -> int:
        return len(self.src_lengths)

    def _ids(self, side: int, i: int) -> list[int]:
        offsets = self._offsets[side]
        return self._tokens[side][offsets[i] : offsets[i + 1]].tolist()

    def pair(self, i: int) -> tuple[list[int], list[int]]:
        """Source and target subword ids of sentence ``i`` (no BOS/EOS)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sentence {i} out of range for {len(self)} pairs")
        i %= len(self)
        return self._ids(0, i), self._ids(1, i)

    def pairs(self, indices: list[int]) -> list[tuple[list[int], list[int]]]:
        """:meth:`pair` for each index, e.g. one batch of a :class:`TokenBatchSampler`."""
        return [self.pair(i) for i in indices]


def _read_text(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text else []


def _save_split(out: Path, split: str, encoded: dict[str, list[list[int]]], raw: dict[str, list[str]] | None) -> None:
    for side in SIDES:
        seqs = encoded[side]
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in seqs], out=offsets[1:])
        tokens = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=int(offsets[-1]))
        np.save(out / f"{split}.{side}.tokens.npy", tokens, allow_pickle=False)
        np.save(out / f"{split}.{side}.offsets.npy", offsets, allow_pickle=False)
        if raw is not None:
            (out / f"{split}.{side}.txt").write_text("".join(line + "\n" for line in raw[side]), encoding="utf-8")


def _log_dropped(split: str, total: int, dropped: dict[str, int]) -> None:
    n = sum(dropped.values())
    if n:
        details = ", ".join(f"{reason}: {count}" for reason, count in dropped.items())
        logger.warning("%s: dropped %d of %d sentence pairs (%s)", split, n, total, details)
    else:
        logger.info("%s: %d sentence pairs, none dropped", split, total)


def _file_info(path: str | os.PathLike[str]) -> dict[str, str]:
    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}


def _read_and_clean(
    sources: dict[str, tuple[str | os.PathLike[str], str | os.PathLike[str]]], max_len_chars: int | None
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, dict[str, int]], dict[str, int]]:
    """Read each split's files and clean them (length limit on train only): (pairs, dropped, lines) per split."""
    cleaned: dict[str, list[tuple[str, str]]] = {}
    dropped: dict[str, dict[str, int]] = {}
    lines: dict[str, int] = {}
    for split, (src_path, tgt_path) in sources.items():
        pairs = read_parallel(src_path, tgt_path)
        lines[split] = len(pairs)
        cleaned[split], dropped[split] = clean_pairs(pairs, max_len_chars if split == "train" else None)
        if not cleaned[split]:
            raise CorpusError(f"no usable sentence pairs in {src_path} / {tgt_path} after cleaning: {dropped[split]}")
    return cleaned, dropped, lines


def _encode(
    pairs: list[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab, limit: int | None
) -> tuple[list[tuple[str, str]], list[list[int]], list[list[int]], int]:
    """Encode both sides; drop pairs with a side over ``limit`` subwords: (pairs, src ids, tgt ids, n dropped)."""
    src_ids = src_vocab.encode_many([s for s, _ in pairs])
    tgt_ids = tgt_vocab.encode_many([t for _, t in pairs])
    if limit is None:
        return pairs, src_ids, tgt_ids, 0
    keep = [max(len(s), len(t)) <= limit for s, t in zip(src_ids, tgt_ids)]
    if not any(keep):
        raise CorpusError(f"no sentence pairs have at most {limit} subwords per side")
    pairs = list(itertools.compress(pairs, keep))
    src_ids = list(itertools.compress(src_ids, keep))
    tgt_ids = list(itertools.compress(tgt_ids, keep))
    return pairs, src_ids, tgt_ids, keep.count(False)


def _train_vocabs(
    texts: tuple[list[str], list[str]], vocab_dir: Path, vocab_size: int, joint: bool, model_type: str, seed: int
) -> tuple[Vocab, Vocab]:
    shutil.rmtree(vocab_dir, ignore_errors=True)  # a previous preparation's, of another layout maybe
    if joint:
        vocab = Vocab.train(texts[0] + texts[1], vocab_dir / "joint", vocab_size, model_type, seed=seed)
        return vocab, vocab
    src = Vocab.train(texts[0], vocab_dir / "src", vocab_size, model_type, seed=seed)
    return src, Vocab.train(texts[1], vocab_dir / "tgt", vocab_size, model_type, seed=seed)


def _manifest(out: Path, src_vocab: Any, tgt_vocab: Any, **settings: Any) -> dict[str, Any]:
    """``prepare.json`` before its splits: the format, the settings, the vocabularies' files and sizes."""
    return {
        "format_version": FORMAT_VERSION,
        "joint": same_ids(src_vocab, tgt_vocab),
        **settings,
        "vocab": {side: {"file": str(vocab.path.relative_to(out)), "size": len(vocab)}
                  for side, vocab in (("src", src_vocab), ("tgt", tgt_vocab))},
        "splits": {},
    }


def _copy_vocabs(run_dir: Path, out: Path) -> tuple[Any, Any]:
    """``run_dir``'s vocabularies copied into ``out/vocab`` (its earlier contents removed), and loaded."""
    source = run_dir / "vocab"
    if not source.is_dir():
        raise FileNotFoundError(f"{run_dir}: no vocab/ directory (--vocab-from takes a run directory)")
    shutil.rmtree(out / "vocab", ignore_errors=True)
    shutil.copytree(source, out / "vocab")
    return load_vocabs(out)


def prepare(
    train_src: str | os.PathLike[str],
    train_tgt: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    valid_src: str | os.PathLike[str] | None = None,
    valid_tgt: str | os.PathLike[str] | None = None,
    vocab_size: int = 8000,
    joint: bool = True,
    model_type: str = "unigram",
    max_len_chars: int | None = None,
    max_tokens_per_sentence: int | None = None,
    seed: int = 0,
    vocab_from: str | os.PathLike[str] | None = None,
) -> PreparedData:
    """Prepare a parallel corpus in ``out_dir`` (layout in the module docstring) and return it opened.

    Args:
        train_src, train_tgt: line-aligned UTF-8 training files.
        out_dir: output directory (created; files of an earlier preparation are replaced).
        valid_src, valid_tgt: optional line-aligned validation files (both or neither).
        vocab_size: SentencePiece vocabulary size (a soft limit, see :meth:`Vocab.train`), per vocabulary.
        joint: one vocabulary shared by both languages (needed for shared embeddings), else one each.
        model_type: ``"unigram"`` or ``"bpe"``.
        max_len_chars: drop training pairs with a side longer than this many characters.
        max_tokens_per_sentence: drop training pairs with a side of more than this many subwords.
        seed: vocabulary training seed.
        vocab_from: a run directory (ours or ``transformer import``'s) whose vocabularies encode the corpus, as
            they are (fine-tuning that run: ``train --init-from``); no vocabulary is trained, and ``vocab_size``,
            ``joint``, ``model_type`` and ``seed`` do not apply.

    Raises:
        CorpusError: a bad input file (message names file and line), or nothing left after cleaning.
        ValueError: bad arguments.
    """
    if (valid_src is None) != (valid_tgt is None):
        raise ValueError("give both valid_src and valid_tgt, or neither")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if max_tokens_per_sentence is not None and max_tokens_per_sentence < 1:
        raise ValueError(f"max_tokens_per_sentence must be positive, got {max_tokens_per_sentence}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the directory is incomplete until the new manifest is written

    sources = {"train": (train_src, train_tgt)}
    if valid_src is not None and valid_tgt is not None:
        sources["valid"] = (valid_src, valid_tgt)
    # Read and check every file before the (slow) vocabulary training, so bad input fails fast.
    cleaned, dropped, lines = _read_and_clean(sources, max_len_chars)
    train_text = ([s for s, _ in cleaned["train"]], [t for _, t in cleaned["train"]])
    if vocab_from is None:
        src_vocab, tgt_vocab = _train_vocabs(train_text, out / "vocab", vocab_size, joint, model_type, seed)
    else:
        src_vocab, tgt_vocab = _copy_vocabs(Path(vocab_from), out)
    trained = vocab_from is None
    manifest = _manifest(out, src_vocab, tgt_vocab, model_type=model_type if trained else None,
                         vocab_size_requested=vocab_size if trained else None,
                         vocab_from=None if trained else str(Path(vocab_from).resolve()), seed=seed,
                         max_len_chars=max_len_chars, max_tokens_per_sentence=max_tokens_per_sentence)
    for split, text_pairs in cleaned.items():
        limit = max_tokens_per_sentence if split == "train" else None
        manifest["splits"][split] = _encode_split(out, split, text_pairs, (src_vocab, tgt_vocab), limit,
                                                  dropped[split], lines[split], sources[split])
    if "valid" not in cleaned:  # a previous preparation's validation split is not ours
        for side in SIDES:
            for name in (f"valid.{side}.tokens.npy", f"valid.{side}.offsets.npy", f"valid.{side}.txt"):
                (out / name).unlink(missing_ok=True)
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / MANIFEST)
    sizes = str(len(src_vocab)) if joint else f"{len(src_vocab)} (source), {len(tgt_vocab)} (target)"
    splits = ", ".join(f"{s} {v['pairs']} pairs" for s, v in manifest["splits"].items())
    logger.info("prepared %s: vocabulary of %s pieces; %s", out, sizes, splits)
    return PreparedData(out, src_vocab, tgt_vocab, {s: v["pairs"] for s, v in manifest["splits"].items()}, manifest)


def _encode_split(
    out: Path, split: str, text_pairs: list[tuple[str, str]], vocabs: tuple[Vocab, Vocab], limit: int | None,
    dropped: dict[str, int], n_lines: int, files: tuple[str | os.PathLike[str], str | os.PathLike[str]],
) -> dict[str, Any]:
    """Encode one cleaned split and save it in ``out``; its entry of the manifest."""
    pairs, src_ids, tgt_ids, n_over = _encode(text_pairs, *vocabs, limit)
    if split == "train":  # the subword limit applies to training data only
        dropped["too_many_tokens"] = n_over
    _log_dropped(split, n_lines, dropped)
    keep_raw = split == "valid"
    raw = {"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]} if keep_raw else None
    _save_split(out, split, {"src": src_ids, "tgt": tgt_ids}, raw)
    return {
        "pairs": len(pairs),
        "lines": n_lines,
        "dropped": dropped,
        "src_tokens": sum(map(len, src_ids)),
        "tgt_tokens": sum(map(len, tgt_ids)),
        "raw_text": keep_raw,
        "files": {"src": _file_info(files[0]), "tgt": _file_info(files[1])},
    }
