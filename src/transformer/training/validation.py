"""Validation during training: loss and perplexity over the validation split, BLEU of translations of it."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import sacrebleu
import torch

from ..data import EncodedCorpus, TokenBatchSampler, Vocab, collate
from ..decoding import DecodeOptions
from ..model import Transformer
from . import distributed
from .distributed import World
from .loss import label_smoothed_loss


@torch.no_grad()
def validation_loss(
    model: Transformer, corpus: EncodedCorpus, max_tokens: int, label_smoothing: float, chunk_size: int,
    world: World, autocast: Callable[[], contextlib.AbstractContextManager],
) -> tuple[float, float]:
    """(label-smoothed loss, negative log-likelihood) per target token over the whole split.

    The batches are shared out among the processes and the sums added up, so every rank gets the same values.
    """
    cfg = model.cfg
    batches = TokenBatchSampler(corpus.src_lengths, corpus.tgt_lengths, max_tokens, shuffle=False).batches(0)
    sums = torch.zeros(3, dtype=torch.float64, device=world.device)  # loss, nll, tokens
    for indices in batches[world.rank :: world.world_size]:
        batch = collate(corpus.pairs(indices), cfg.pad_id, cfg.bos_id, cfg.eos_id).to(world.device)
        with autocast():
            hidden = model.decode(batch.tgt_in, model.encode(batch.src), model.source_mask(batch.src))
            loss = label_smoothed_loss(hidden, batch.tgt_out, model.output_weight, cfg.pad_id, label_smoothing,
                                       chunk_size, output_bias=model.output_bias)
        sums += torch.stack([loss.loss.double(), loss.nll.double(), sums.new_tensor(float(loss.n_tokens))])
    loss_sum, nll_sum, n_tokens = distributed.all_reduce_sum(sums).tolist()
    return loss_sum / max(n_tokens, 1), nll_sum / max(n_tokens, 1)


@torch.no_grad()
def validation_bleu(
    model: Transformer, corpus: EncodedCorpus, tgt_vocab: Vocab, n_sentences: int | None, options: DecodeOptions,
    max_tokens: int, device: torch.device,
) -> float:
    """Corpus BLEU (sacrebleu, default 13a tokenisation) of the first ``n_sentences`` translations against the
    split's raw target text; the whole split when ``n_sentences`` is None."""
    if corpus.raw_tgt is None:
        raise ValueError("the validation split has no raw target text to compute BLEU against")
    cfg = model.cfg
    n = len(corpus) if n_sentences is None else min(n_sentences, len(corpus))
    src_lengths = np.asarray(corpus.src_lengths[:n])
    # Batches of similar source lengths; the target side counts nothing (the outputs are not known yet).
    batches = TokenBatchSampler(src_lengths, np.zeros_like(src_lengths), max_tokens, shuffle=False).batches(0)
    hypotheses = [""] * n
    for indices in batches:
        src = collate(corpus.pairs(indices), cfg.pad_id, cfg.bos_id, cfg.eos_id).src.to(device)
        out = model.generate(src, options)
        for i, ids in zip(indices, out.tolist()):
            hypotheses[i] = tgt_vocab.decode(ids)
    return sacrebleu.corpus_bleu(hypotheses, [list(corpus.raw_tgt[:n])]).score


def perplexity(nll_per_token: float) -> float:
    """exp of the per-token negative log-likelihood (inf rather than an overflow error)."""
    return math.exp(nll_per_token) if nll_per_token < 700 else math.inf
