"""Training throughput: ``TRAINERS``, the implementations trained, and ``run_train``, the ``train`` part.

One repetition is one optimizer step on each of the token-bucket batches (``workload.training_batches``):
zero_grad, label-smoothed (0.1) loss, backward, Adam step (betas 0.9/0.98, eps 1e-9). An entry's ``build(size,
batches)`` returns a ready ``Trainer`` (its inputs already in that model's ids). The ``peak`` part
(``bench_memory``) and the ``profile`` part build the same trainers.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

import peers
import workload
from bench_models import Impl, build_marian, build_nn, build_ours, n_params, select
from bench_report import add_row, add_skipped
from bench_timing import interleaved, log
from transformer.training.loss import label_smoothed_loss
from workload import PAD, SIZES, Batch

LABEL_SMOOTHING = 0.1


class Trainer:
    """One repetition = one optimizer step on each batch: zero_grad, loss, backward, Adam step.

    ``loss_fn(*inputs)`` computes the loss of one batch from that batch's prepared inputs.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor], inputs: list[tuple]):
        self.model = model.train()
        self.loss_fn = loss_fn
        self.inputs = inputs
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def __call__(self) -> None:
        for args in self.inputs:
            self.optimizer.zero_grad(set_to_none=True)
            self.loss_fn(*args).backward()
            self.optimizer.step()

    def release(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)


def smoothed_loss(logits: torch.Tensor, target: torch.Tensor, pad: int) -> torch.Tensor:
    """Label-smoothed cross-entropy over the non-pad targets: logits (B, T, V), target (B, T)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=pad, label_smoothing=LABEL_SMOOTHING
    )


def _our_inputs(batches: list[Batch]) -> list[tuple]:
    return [(b.src, b.tgt_in, b.tgt_out) for b in batches]


def _on_full_logits(model: torch.nn.Module, batches: list[Batch]) -> Trainer:
    """``model(src, tgt_in)`` -> logits (B, T, V), then ``smoothed_loss``."""
    return Trainer(model, lambda src, tgt_in, tgt_out: smoothed_loss(model(src, tgt_in), tgt_out, PAD),
                   _our_inputs(batches))


def train_ours(size: dict[str, int], batches: list[Batch]) -> Trainer:
    return _on_full_logits(build_ours(size), batches)


def train_nn(size: dict[str, int], batches: list[Batch]) -> Trainer:
    return _on_full_logits(build_nn(size), batches)


def train_ours_chunked(size: dict[str, int], batches: list[Batch], compiled: bool = False,
                       recompute: bool = False) -> Trainer:
    """Ours with the loss our training uses, ``label_smoothed_loss``: the projection and softmax a chunk of
    positions at a time. ``compiled``: its softmax and gradient ``torch.compile``d (``train.compile_loss``;
    compiled during the warm-up). ``recompute``: activation checkpointing (``train.recompute``)."""
    model = build_ours(size)
    model.recompute_layers(recompute)

    def loss(src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor) -> torch.Tensor:
        hidden = model.decode(tgt_in, model.encode(src), model.source_mask(src))  # (B, T, D)
        sums = label_smoothed_loss(hidden, tgt_out, model.output_weight, PAD, LABEL_SMOOTHING, compiled=compiled)
        return sums.loss / sums.n_tokens

    return Trainer(model, loss, _our_inputs(batches))


def train_marian(size: dict[str, int], batches: list[Batch]) -> Trainer:
    """Hugging Face's MarianMTModel, on the batches mapped to Marian's ids, with attention masks."""
    model, vocab = build_marian(size), size["vocab"]
    pad = peers.marian_pad(vocab)

    def loss(src, src_mask, tgt_in, tgt_mask, tgt_out) -> torch.Tensor:
        out = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt_in,
                    decoder_attention_mask=tgt_mask, use_cache=False)
        return smoothed_loss(out.logits, tgt_out, pad)

    inputs = [
        (peers.to_marian(b.src, vocab), (b.src != PAD).long(), peers.to_marian(b.tgt_in, vocab),
         (b.tgt_in != PAD).long(), peers.to_marian(b.tgt_out, vocab))
        for b in batches
    ]
    return Trainer(model, loss, inputs)


TRAINERS: dict[str, Impl] = {impl.label: impl for impl in (
    Impl("ours", "ours", train_ours),
    Impl("ours, chunked loss", "ours", train_ours_chunked),
    Impl("ours, compiled loss", "compiled", partial(train_ours_chunked, compiled=True)),
    Impl("ours, recompute", "recompute", partial(train_ours_chunked, recompute=True)),
    Impl("nn.Transformer", "nn", train_nn),
    Impl("HF Marian", "hf", train_marian, needs=("transformers",)),
)}


def run_train(size_name: str, args: argparse.Namespace, report: dict) -> None:
    """The ``train`` part at one size: every selected trainer, interleaved; rows of target tokens/s."""
    size = SIZES[size_name]
    batches = workload.training_batches(size["vocab"], args.train_tokens, args.train_batches)
    tokens = sum(b.target_tokens for b in batches)
    flops = workload.training_flops(batches, size)
    impls, skipped = select(TRAINERS, args.impls)
    trainers = {impl.label: impl.build(size, batches) for impl in impls}
    log(f"[{size_name}] train: {len(batches)} batches, shapes "
        f"{[(tuple(b.src.shape), b.tgt_in.size(1)) for b in batches]}, {tokens} target tokens per repetition")
    times = interleaved(trainers, args.reps, args.warmup)
    for label in trainers:
        add_row(report, size_name, "train", f"{tokens} tgt tok/rep", label, times[label], tokens, "tgt tok/s",
                flops=flops, params=n_params(trainers[label].model))
    add_skipped(report, size_name, "train", skipped)
    del trainers
    gc.collect()
