"""Marian vocabularies (Hugging Face's ``MarianTokenizer``): SentencePiece pieces, mapped to ids by ``vocab.json``.

A Marian checkpoint (the OPUS-MT models) tokenizes the source with ``source.spm`` and the target with
``target.spm`` (both are SentencePiece models, used for their pieces only), and numbers the pieces with one
``vocab.json`` (or a second, ``target_vocab.json``, with ``separate_vocabs``). Text in and out as
``MarianTokenizer`` does it:

- encode: a leading language code (``>>de<<``, multilingual models) is kept whole, the rest is cut into
  ``source.spm`` pieces, and each piece gets its ``vocab.json`` id (``<unk>``'s when it has none). The
  EOS is appended by ``source_ids`` as for every vocabulary.
- decode: the special tokens are left out, the rest joined by SentencePiece, ``▁`` read as a space; with one
  shared vocabulary Hugging Face joins with the source model, with separate ones with the target's, and so
  does this.

Special ids come from the vocabulary (``</s>``, ``<unk>``, ``<pad>``); the decoder starts from ``<pad>`` (its
``bos_id``), as Marian's does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm

SPECIALS = ("</s>", "<unk>", "<pad>")
SPIECE_UNDERLINE = "\u2581"
VOCAB_FILES = ("source.spm", "target.spm", "vocab.json")  # and target_vocab.json with separate vocabularies


def read_vocab_json(path: Path) -> dict[str, int]:
    """``vocab.json``: piece -> id; ValueError naming the file when it is not such a mapping."""
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable vocabulary ({e})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
        raise ValueError(f"{path}: a vocabulary is a JSON object of piece -> integer id")
    missing = [token for token in SPECIALS if token not in mapping]
    if missing:
        raise ValueError(f"{path}: the vocabulary has no {', '.join(missing)}")
    return mapping


def load_spm(path: Path) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor()
    try:
        processor.load(str(path))
    except (OSError, RuntimeError) as e:
        raise ValueError(f"{path}: not a SentencePiece model ({e})") from None
    return processor


class MarianVocab:
    """One side's vocabulary of a Marian checkpoint (see the module docstring).

    Args:
        spm_path: the side's SentencePiece model (``source.spm`` or ``target.spm``), which cuts text into pieces.
        vocab_path: the side's ``vocab.json`` (or ``target_vocab.json``).
        join_path: the SentencePiece model that joins decoded pieces (Hugging Face's choice: the source's
            with one shared vocabulary); ``spm_path`` when None.
        size: the model's vocabulary size, when it is more than the mapping's largest id + 1.
    """

    def __init__(self, spm_path: Path, vocab_path: Path, join_path: Path | None = None, size: int | None = None):
        self.path = Path(spm_path)
        self.vocab_path = Path(vocab_path)
        self.encoder = read_vocab_json(vocab_path)
        self.decoder = {i: piece for piece, i in self.encoder.items()}
        self._split = load_spm(self.path)
        self._join = self._split if join_path is None else load_spm(Path(join_path))
        self.eos_id, self.unk_id, self.pad_id = (self.encoder[token] for token in SPECIALS)
        self.bos_id = self.pad_id  # Marian's decoder starts from <pad>
        self.special_ids = frozenset((self.eos_id, self.unk_id, self.pad_id))
        self._size = max(size or 0, max(self.encoder.values()) + 1)

    def pieces(self, text: str) -> list[str]:
        """A leading language code (``>>de<<``) whole, then the SentencePiece pieces of the rest."""
        code: list[str] = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2 :]
        return code + self._split.encode(text, out_type=str)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s pieces (``<unk>``'s for a piece the vocabulary lacks); no EOS."""
        return [self.encoder.get(piece, self.unk_id) for piece in self.pieces(text)]

    def encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``, special tokens left out (``MarianTokenizer.decode(ids, skip_special_tokens=True)``)."""
        pieces = [self.id_to_piece(int(i)) for i in ids if int(i) not in self.special_ids]
        return self._join.decode_pieces(pieces).replace(SPIECE_UNDERLINE, " ").strip()

    def id_to_piece(self, i: int) -> str:
        return self.decoder.get(int(i), "<unk>")

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"MarianVocab(spm={str(self.path)!r}, vocab={str(self.vocab_path)!r}, size={len(self)})"


def load_marian_vocabs(directory: str | os.PathLike[str], separate: bool) -> tuple[MarianVocab, MarianVocab]:
    """The (source, target) vocabularies of a Marian directory (``source.spm``, ``target.spm``, ``vocab.json``
    and, when ``separate``, ``target_vocab.json``); one shared mapping otherwise."""
    directory = Path(directory)
    for name in (*VOCAB_FILES, *(("target_vocab.json",) if separate else ())):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name}: missing (a Marian vocabulary needs {name})")
    source, target = directory / "source.spm", directory / "target.spm"
    if separate:
        return (MarianVocab(source, directory / "vocab.json"),
                MarianVocab(target, directory / "target_vocab.json"))
    shared = directory / "vocab.json"
    return MarianVocab(source, shared), MarianVocab(target, shared, join_path=source)
