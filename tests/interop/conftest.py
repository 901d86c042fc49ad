"""Marian checkpoints built here, with Hugging Face's own classes and random weights (nothing is downloaded):
small SentencePiece models trained on synthetic sentences, a ``vocab.json`` numbering their pieces as OPUS-MT's
do (``</s>`` 0, ``<unk>`` 1, ``<pad>`` last), a ``MarianMTModel`` from a ``MarianConfig``, saved with
``save_pretrained`` beside the tokenizer's files."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install '.[marian]')")

EN = ["the", "a", "small", "old", "red", "dog", "cat", "house", "runs", "sees", "likes", "river", "today", "again"]
LANGUAGE_CODES = [">>de<<", ">>nds<<"]
DE = ["der", "die", "das", "ein", "kleine", "alte", "rote", "Hund", "Katze", "Haus", "läuft", "sieht", "Fluss", "heute"]


def sentences(words: list[str], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 8))).capitalize() + "." for _ in range(n)]


def train_spm(texts: list[str], prefix: Path, size: int) -> Path:
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_prefix=str(prefix), vocab_size=size,
                                   model_type="unigram", hard_vocab_limit=False, minloglevel=2, num_threads=1)
    return prefix.with_suffix(".model")


def numbering(*models: Path, size: int | None = None) -> dict[str, int]:
    """OPUS-MT's numbering: </s> 0, <unk> 1, the language codes of multilingual models, the pieces, <pad> last
    (fillers up to ``size``)."""
    pieces: list[str] = []
    for model in models:
        processor = spm.SentencePieceProcessor(model_file=str(model))
        pieces += [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    ordered = ["</s>", "<unk>", *LANGUAGE_CODES]
    ordered += [p for p in dict.fromkeys(pieces) if p not in ("</s>", "<unk>", "<s>", "<pad>")]
    if size is not None:
        ordered += [f"<filler{i}>" for i in range(size - 1 - len(ordered))]
    return {piece: i for i, piece in enumerate(ordered + ["<pad>"])}


@dataclass(frozen=True)
class Checkpoint:
    dir: Path
    model: object  # MarianMTModel, eval mode
    tokenizer: object  # MarianTokenizer
    separate: bool


def build_checkpoint(root: Path, separate: bool, activation: str, layers: int, logits_bias: bool,
                     seed: int = 0, trained_steps: int = 0) -> Checkpoint:
    """A MarianMT directory and its tokenizer: random weights spread wide enough to make decisions (norms and, if
    asked, the logits bias random too), or, with ``trained_steps``, a model Hugging Face's own loss has trained
    that long on word-for-word English -> German (a half-learnt model: outputs of varied lengths, where beam
    search and greedy decoding disagree on some)."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    raw = root / "raw"
    source = train_spm(sentences(EN, 300, 1), raw / "source", 60)
    target = train_spm(sentences(DE, 300, 2), raw / "target", 60)
    if separate:
        size = max(len(numbering(source)), len(numbering(target)))
        vocab, target_vocab = numbering(source, size=size), numbering(target, size=size)
        (raw / "target_vocab.json").write_text(json.dumps(target_vocab), encoding="utf-8")
    else:
        vocab = numbering(source, target)
    (raw / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = MarianTokenizer(str(source), str(target), str(raw / "vocab.json"),
                                target_vocab_file=str(raw / "target_vocab.json") if separate else None,
                                separate_vocabs=separate)
    v = len(vocab)
    config = MarianConfig(
        vocab_size=v, decoder_vocab_size=v, share_encoder_decoder_embeddings=not separate, d_model=32,
        encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=64, decoder_ffn_dim=64, activation_function=activation, max_position_embeddings=128,
        scale_embedding=True, pad_token_id=v - 1, eos_token_id=0, decoder_start_token_id=v - 1,
        forced_eos_token_id=0, init_std=0.02 if trained_steps else 0.3, dropout=0.1,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and not trained_steps:
                p.copy_(torch.randn_like(p) * 0.2 + (1.0 if name.endswith("weight") else 0.0))
        if logits_bias:
            model.final_logits_bias.normal_()
            model.final_logits_bias[0, 0] += 2.0  # EOS a little more likely: hypotheses end
    if trained_steps:
        train_briefly(model, tokenizer, trained_steps, seed)
    model.generation_config.num_beams, model.generation_config.max_length = 3, 40
    out = root / "marian"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Checkpoint(out, model, tokenizer, separate)


def train_briefly(model, tokenizer, steps: int, seed: int) -> None:
    """``steps`` Adam updates of Hugging Face's own loss on batches of 32 word-for-word translations."""
    lexicon, rng = dict(zip(EN, DE)), random.Random(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        words = [[rng.choice(EN) for _ in range(rng.randint(2, 8))] for _ in range(32)]
        batch = tokenizer([" ".join(w).capitalize() + "." for w in words],
                          text_target=[" ".join(lexicon[x] for x in w).capitalize() + "." for w in words],
                          return_tensors="pt", padding=True)
        batch["labels"] = batch["labels"].masked_fill(batch["labels"] == model.config.pad_token_id, -100)
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


VARIANTS = {
    "shared, swish, 2 layers, logits bias": dict(separate=False, activation="swish", layers=2, logits_bias=True),
    "separate, relu, 1 layer": dict(separate=True, activation="relu", layers=1, logits_bias=False),
    "shared, relu, 3 layers, logits bias": dict(separate=False, activation="relu", layers=3, logits_bias=True),
    "trained 150 steps: shared, swish, 2 layers, logits bias": dict(
        separate=False, activation="swish", layers=2, logits_bias=True, trained_steps=150),
}


@pytest.fixture(scope="session", params=list(VARIANTS))
def checkpoint(request, tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    return build_checkpoint(tmp_path_factory.mktemp("marian"), **VARIANTS[request.param])


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Checkpoint]:
    return lambda **kw: build_checkpoint(tmp_path_factory.mktemp("marian"), **kw)


@pytest.fixture(scope="session")
def words() -> tuple[list[str], list[str], Callable[[list[str], int, int], list[str]]]:
    """(English words, German words, ``sentences(words, n, seed)``) for vocabularies trained in a test."""
    return EN, DE, sentences
