"""What the training experiments train on, and how: the demo's task, small enough to train many models on a CPU.

``NumbersTask``: English number words -> German number words (``transformer.demo.numbers``), up to 9,999 (up
to 99 with ``quick``), with one joint BPE vocabulary; the test numbers are never seen in training.
``train``: the paper's recipe in miniature (Adam with beta2 0.98, the warmup-then-inverse-square-root schedule,
label smoothing 0.1, our loss), for a fixed number of steps, recording the loss. ``exact_match``: the share
of test numbers translated exactly, greedily.

Shapes: B batch, S source length, T target length, V vocabulary, D d_model.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..config import Architecture, TransformerConfig
from ..data.batching import Batch, collate, source_ids
from ..data.vocab import Vocab
from ..decoding import DecodeOptions, search
from ..demo.numbers import make_demo_corpus
from ..model import Transformer
from ..training.loss import label_smoothed_loss
from ..training.schedule import noam_lr, set_lr

# A small model of the paper's shape: trains on the numbers task in seconds a run on two cores.
SMALL = Architecture(d_model=64, n_heads=4, d_ff=256, n_encoder_layers=2, n_decoder_layers=2, dropout=0.1,
                     share_embeddings=True)


@dataclass(frozen=True)
class TaskSize:
    max_number: int
    n_train: int
    n_test: int
    vocab_size: int
    steps: int  # training steps of one model


FULL = TaskSize(max_number=9999, n_train=6000, n_test=300, vocab_size=120, steps=300)
QUICK = TaskSize(max_number=99, n_train=70, n_test=10, vocab_size=60, steps=8)


class NumbersTask:
    """The numbers corpus in memory: token ids of the training and test pairs, and the joint vocabulary."""

    def __init__(self, directory: Path, quick: bool = False) -> None:
        self.size = QUICK if quick else FULL
        files = make_demo_corpus(directory / "raw", self.size.n_train, 0, self.size.n_test, self.size.max_number)
        read = lambda path: path.read_text(encoding="utf-8").splitlines()  # noqa: E731
        texts = {split: (read(en), read(de)) for split, (en, de) in files.items()}
        self.vocab = Vocab.train([*texts["train"][0], *texts["train"][1]], directory / "vocab" / "joint",
                                 self.size.vocab_size, model_type="bpe")
        encode = lambda lines: [self.vocab.encode(line) for line in lines]  # noqa: E731
        self.train_pairs = list(zip(encode(texts["train"][0]), encode(texts["train"][1])))
        self.test_sources, self.test_references = texts["test"]
        self.test_ids = encode(self.test_sources)

    def config(self, architecture: Architecture = SMALL, **changes: object) -> TransformerConfig:
        """The model config of ``architecture`` (with ``changes``) for this task's vocabulary."""
        v = self.vocab
        return TransformerConfig.of(dataclasses.replace(architecture, **changes), src_vocab_size=len(v),
                                    tgt_vocab_size=len(v), pad_id=v.pad_id, bos_id=v.bos_id, eos_id=v.eos_id)

    def batches(self, batch_size: int, seed: int) -> Callable[[], Batch]:
        """An endless supply of shuffled training batches of ``batch_size`` pairs."""
        rng, order = random.Random(seed), []

        def next_batch() -> Batch:
            nonlocal order
            if len(order) < batch_size:
                order = order + rng.sample(range(len(self.train_pairs)), len(self.train_pairs))
            picked, order = order[:batch_size], order[batch_size:]
            v = self.vocab
            return collate([self.train_pairs[i] for i in picked], v.pad_id, v.bos_id, v.eos_id)

        return next_batch


@dataclass
class Trained:
    """A trained model, its per-step training loss (label-smoothed, per target token: what is optimised) and
    negative log-likelihood per target token (-log P(reference): 0 for a model that is sure and right; the
    label-smoothed loss cannot go below the smoothing's own entropy)."""

    model: Transformer
    losses: list[float]
    seconds: float
    nlls: list[float] = dataclasses.field(default_factory=list)


def train(task: NumbersTask, cfg: TransformerConfig, seed: int, steps: int | None = None, batch_size: int = 64,
          warmup: int = 100, lr_scale: float = 1.0) -> Trained:
    """``steps`` (default: the task's) updates of the paper's recipe on the numbers task (``train_on``)."""
    return train_on(task.batches(batch_size, seed), cfg, seed, steps or task.size.steps,
                    noam(cfg.d_model, warmup, lr_scale))


def noam(d_model: int, warmup: int = 100, scale: float = 1.0) -> Callable[[int], float]:
    """The paper's schedule as a function of the step (``noam_lr``)."""
    return lambda step: noam_lr(step, d_model, warmup, scale)


def train_on(next_batch: Callable[[], Batch], cfg: TransformerConfig, seed: int, steps: int,
             schedule: Callable[[int], float]) -> Trained:
    """``steps`` updates of the paper's recipe (Adam 0.9/0.98, label smoothing 0.1) at the learning rate
    ``schedule(step)`` on ``next_batch()``'s batches, from a model seeded with ``seed``. A loss that is not finite
    ends training (a diverged run is a result: its NaN is the last loss)."""
    torch.manual_seed(seed)
    model = Transformer(cfg).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9)
    losses: list[float] = []
    nlls: list[float] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        set_lr(optimizer, schedule(step))
        batch = next_batch()
        hidden = model.decode(batch.tgt_in, model.encode(batch.src), model.source_mask(batch.src))  # (B, T, D)
        sums = label_smoothed_loss(hidden, batch.tgt_out, model.output_weight, cfg.pad_id, 0.1, 0,
                                   output_bias=model.output_bias)
        loss = sums.loss / sums.n_tokens
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        nlls.append(float(sums.nll) / sums.n_tokens)
        if not torch.isfinite(loss):
            break
    return Trained(model.eval(), losses, time.perf_counter() - start, nlls)


def greedy_by_recomputation(model: Transformer, src: Tensor, max_len: int) -> Tensor:
    """Greedy decoding that runs the whole decoder again on the prefix at every step (no cache): what a model
    without the causal mask sees when it generates. Shapes: src (B, S) -> (B, <= max_len), padded."""
    cfg = model.cfg
    with torch.no_grad():
        memory, src_mask = model.encode(src), model.source_mask(src)
        out = torch.full((src.size(0), 1), cfg.bos_id, dtype=torch.long)
        done = torch.zeros(src.size(0), dtype=torch.bool)
        for _ in range(max_len):
            logits = model.project(model.decode(out, memory, src_mask)[:, -1])  # (B, V)
            logits[:, [cfg.pad_id, cfg.bos_id]] = -torch.inf
            token = logits.argmax(-1).masked_fill(done, cfg.pad_id)
            out = torch.cat([out, token[:, None]], dim=1)
            done |= token == cfg.eos_id
            if bool(done.all()):
                break
    tokens = out[:, 1:]
    return tokens.masked_fill(tokens == cfg.eos_id, cfg.pad_id)


def exact_match(task: NumbersTask, model: Transformer, recompute: bool = False) -> float:
    """The share of test numbers translated exactly (greedy decoding; ``recompute``: ``greedy_by_recomputation``)."""
    v = task.vocab
    rows = [source_ids(ids, v.eos_id) for ids in task.test_ids]
    src = torch.full((len(rows), max(map(len, rows))), v.pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        src[i, : len(row)] = torch.tensor(row)
    with torch.no_grad():
        if recompute:
            tokens = greedy_by_recomputation(model, src, 40)
        else:
            tokens = search(model, src, DecodeOptions(beam_size=1, max_len=40)).tokens[:, 0]
    hypotheses = [v.decode([t for t in row.tolist() if t != v.pad_id]) for row in tokens]
    return sum(h == r for h, r in zip(hypotheses, task.test_references)) / len(hypotheses)


def as_batch(task: NumbersTask, n: int) -> Batch:
    """The first ``n`` training pairs as one batch (for measurements at initialisation)."""
    v = task.vocab
    return collate(task.train_pairs[:n], v.pad_id, v.bos_id, v.eos_id)
