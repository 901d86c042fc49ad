"""Translator: text in, text out, over a trained model and its vocabularies.

The one place where inference tokenizes, batches, decodes and detokenizes; the ``translate``,
``evaluate``, ``attention`` and ``serve`` commands all go through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from .model import AttentionMaps, Transformer
from .settings import DecodeConfig, load_config


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
    """Translate sentences with ``model``; ``src_vocab``/``tgt_vocab`` turn text into ids and back."""

    def __init__(
        self,
        model: Transformer,
        src_vocab: TextVocab,
        tgt_vocab: TextVocab,
        device: str | torch.device | None = "cpu",
        batch_tokens: int = 4096,
        decode: DecodeConfig | None = None,
    ) -> None:
        self.device = _device(device)
        self.decode = decode or DecodeConfig()  # defaults for the command line: the run's [decode] section
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
        section of its ``config.toml`` (the defaults where there is none)."""
        from .data.vocab import load_vocabs
        from .training.checkpoint import load_model

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such checkpoint or run directory")
        model, _ = load_model(path)
        run_dir = path if path.is_dir() else _run_dir_of(path)
        src_vocab, tgt_vocab = load_vocabs(run_dir)
        config = run_dir / "config.toml"
        decode = load_config(config).decode if config.is_file() else DecodeConfig()
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

    def translate(
        self,
        texts: Sequence[str],
        beam_size: int = 4,
        n_best: int = 1,
        length_penalty: float = 0.6,
        max_len: int | None = None,
    ) -> list[list[Translation]]:
        """One n-best list per text, best first, decoded in length-sorted batches."""
        if not texts:
            return []
        ids = [self._source_ids(t) for t in texts]
        results: list[list[Translation]] = [[] for _ in texts]
        for batch in self._batches([len(s) for s in ids]):
            gen = self.model.generate(
                self._pad([ids[i] for i in batch]),
                beam_size=beam_size,
                max_len=max_len,
                length_penalty=length_penalty,
                n_best=n_best,
                return_scores=True,
            )
            tokens, scores, lengths = gen.tokens.tolist(), gen.scores.tolist(), gen.lengths.tolist()
            for row, i in enumerate(batch):
                results[i] = [
                    Translation(self.tgt_vocab.decode(toks[:n]), toks[:n], score)
                    for toks, score, n in zip(tokens[row], scores[row], lengths[row])
                ]
        return results

    def attention(self, text: str, beam_size: int = 1, max_len: int | None = None) -> AttentionResult:
        """Translate ``text``, then run the model teacher-forced on its own output, recording attention."""
        best = self.translate([text], beam_size=beam_size, max_len=max_len)[0][0]
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


def _run_dir_of(checkpoint: Path) -> Path:
    """The run directory holding ``vocab/`` for a checkpoint file (RUN/x.safetensors or RUN/checkpoints/x)."""
    for parent in checkpoint.parents:
        if (parent / "vocab").is_dir():
            return parent
    raise FileNotFoundError(f"{checkpoint}: no vocab/ directory found beside it or above it")
