"""Translator: text in, text out, over a trained model and its vocabularies.

The one place where inference tokenizes, batches, decodes and detokenizes; the ``translate``,
``evaluate``, ``attention`` and ``serve`` commands all go through it. It imports nothing of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from .decoding import DecodeOptions, search
from .model import AttentionMaps, Transformer
from .run_config import load_config
from .run_dir import CONFIG, load_model, run_dir_of


class TextVocab(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def pieces(self, text: str) -> list[str]: ...
    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Translation:
    text: str
    tokens: list[int]  # target ids, without BOS/EOS
    score: float  # log P(Y|X) / lp(Y) for beam search, log P(Y|X) for greedy


@dataclass(frozen=True)
class AttentionResult:
    """A translation and every attention weight of a teacher-forced pass over it (batch of 1)."""

    src_pieces: list[str]  # source subwords + "</s>": encoder rows/columns, cross-attention columns
    tgt_pieces: list[str]  # "<s>" + output subwords: the decoder input, decoder rows
    output_pieces: list[str]  # output subwords + "</s>": what each decoder row predicts
    translation: str
    maps: AttentionMaps


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Translator:
    """Translate sentences with ``model``; ``src_vocab``/``tgt_vocab`` turn text into ids and back.

    ``decode`` is how ``translate`` decodes when it is given no options (a run's ``[decode]`` section,
    ``from_checkpoint``; else ``DecodeOptions()``).
    """

    def __init__(
        self,
        model: Transformer,
        src_vocab: TextVocab,
        tgt_vocab: TextVocab,
        device: str | torch.device | None = "cpu",
        batch_tokens: int = 4096,
        decode: DecodeOptions | None = None,
    ) -> None:
        self.device = _device(device)
        self.decode = decode or DecodeOptions()
        self.model = model.to(self.device).eval()
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.batch_tokens = batch_tokens
        cfg = model.cfg
        if len(src_vocab) != cfg.src_vocab_size or len(tgt_vocab) != cfg.tgt_vocab_size:
            raise ValueError(
                f"vocabulary sizes {len(src_vocab)}/{len(tgt_vocab)} do not match the model's "
                f"{cfg.src_vocab_size}/{cfg.tgt_vocab_size}"
            )

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None) -> Translator:
        """Load a run directory (its best, else latest, checkpoint) or one ``.safetensors`` file in a run
        directory; the vocabularies come from the run directory's ``vocab/``, ``decode`` from the ``[decode]``
        section of its ``config.toml`` (the defaults where there is none).

        Raises:
            FileNotFoundError: no such checkpoint, or no vocabulary beside it.
            CheckpointError: the weights file cannot be loaded (truncated, corrupted, not ours).
            ValueError: the vocabularies do not fit the model, or the run's config is invalid.
        """
        from .data.vocab import load_vocabs

        model, _ = load_model(path)
        run_dir = run_dir_of(path)
        src_vocab, tgt_vocab = load_vocabs(run_dir)
        config = run_dir / CONFIG
        decode = load_config(config).decode if config.is_file() else DecodeOptions()
        return cls(model, src_vocab, tgt_vocab, device=device, decode=decode)

    def count_tokens(self, text: str) -> int:
        """Source subword tokens of ``text`` (without the EOS the model adds)."""
        return len(self.src_vocab.encode(text))

    def _source_ids(self, text: str) -> list[int]:
        from .data.batching import source_ids

        return source_ids(self.src_vocab.encode(text), eos_id=self.model.cfg.eos_id)

    def _pad(self, seqs: list[list[int]]) -> torch.Tensor:
        width = max(len(s) for s in seqs)
        out = torch.full((len(seqs), width), self.model.cfg.pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        return out.to(self.device)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped by similar length, each batch about ``batch_tokens`` padded source tokens."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            if current and (len(current) + 1) * lengths[i] > self.batch_tokens:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def translate(self, texts: Sequence[str], options: DecodeOptions | None = None) -> list[list[Translation]]:
        """One n-best list per text, best first, decoded in length-sorted batches (``options``: ``self.decode``
        when None)."""
        options = options or self.decode
        if not texts:
            return []
        ids = [self._source_ids(t) for t in texts]
        results: list[list[Translation]] = [[] for _ in texts]
        for batch in self._batches([len(s) for s in ids]):
            gen = search(self.model, self._pad([ids[i] for i in batch]), options)
            tokens, scores, lengths = gen.tokens.tolist(), gen.scores.tolist(), gen.lengths.tolist()
            for row, i in enumerate(batch):
                results[i] = [
                    Translation(self.tgt_vocab.decode(toks[:n]), toks[:n], score)
                    for toks, score, n in zip(tokens[row], scores[row], lengths[row])
                ]
        return results

    def translate_lines(self, lines: Sequence[str], options: DecodeOptions | None = None) -> list[list[Translation]]:
        """``translate`` over ``lines``, where a blank line gets an empty n-best list.

        Blank lines are not sent to the model (it would translate the empty sentence into something); the
        result stays aligned with ``lines``, one list per line.
        """
        todo = [i for i, line in enumerate(lines) if line.strip()]
        results: list[list[Translation]] = [[] for _ in lines]
        for i, nbest in zip(todo, self.translate([lines[i] for i in todo], options)):
            results[i] = nbest
        return results

    def attention(self, text: str, options: DecodeOptions | None = None) -> AttentionResult:
        """Translate ``text`` (by default greedily, within ``self.decode``'s length limits), then run the model
        teacher-forced on its own output, recording attention."""
        best = self.translate([text], options or self.decode.override(beam_size=1, n_best=1))[0][0]
        cfg = self.model.cfg
        src = self._pad([self._source_ids(text)])  # (1, S)
        tgt_in = torch.tensor([[cfg.bos_id, *best.tokens]], dtype=torch.long, device=self.device)  # (1, T)
        with torch.inference_mode():
            _, maps = self.model.forward_with_attention(src, tgt_in)
        out_pieces = [self._piece(self.tgt_vocab, i) for i in best.tokens]
        return AttentionResult(
            src_pieces=[self._piece(self.src_vocab, i) for i in self.src_vocab.encode(text)] + ["</s>"],
            tgt_pieces=["<s>", *out_pieces],
            output_pieces=[*out_pieces, "</s>"],
            translation=best.text,
            maps=maps,
        )

    @staticmethod
    def _piece(vocab: TextVocab, token: int) -> str:
        """The subword string of one id (SentencePiece's id_to_piece when the vocab has it)."""
        to_piece = getattr(vocab, "id_to_piece", None)
        return to_piece(token) if to_piece is not None else vocab.decode([token])
