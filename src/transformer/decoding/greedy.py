"""Greedy decoding: the most probable token at every step, all sentences of a batch at once.

Shapes: B batch, S source length, L output length, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import (
    DROP_FINISHED_FRACTION,
    Generation,
    Seq2Seq,
    check_source,
    output_limits,
    strip_eos,
    top_next_tokens,
)
from .options import DecodeOptions


@torch.inference_mode()
def greedy_search(model: Seq2Seq, src: Tensor, options: DecodeOptions | None = None) -> Generation:
    """y_t = argmax_v P(v | y_<t, x) until EOS or the sentence's length limit (``options.max_len`` and
    ``min_len``; its beam size, n-best and length penalty do not apply).

    Sentences that have ended leave the batch (``DROP_FINISHED_FRACTION``), so a batch of mixed output
    lengths costs little more than its sentences decoded alone.
    Shapes: src (B, S) -> Generation with tokens (B, 1, L); A rows still decoded.
    """
    check_source(src)
    options = options or DecodeOptions()
    cfg = model.cfg
    b = src.size(0)
    limits = output_limits(src, cfg.pad_id, options)  # (B,)
    steps = int(limits.max())
    src_mask = model.source_mask(src)
    state = model.start_state(model.encode(src), src_mask, capacity=steps)
    rows = torch.arange(b, device=src.device)  # (A,) the sentence of each decoded row
    tokens = torch.full((b,), cfg.bos_id, dtype=torch.long, device=src.device)  # (A,)
    out = torch.full((b, steps), cfg.pad_id, dtype=torch.long, device=src.device)
    scores = torch.zeros(b, device=src.device)
    finished = torch.zeros(b, dtype=torch.bool, device=src.device)  # (A,)
    for t in range(steps):
        logits, state = model.decode_step(tokens, state)
        best_logp, tokens = top_next_tokens(logits, 1, t, options.min_len, cfg.pad_id, cfg.bos_id, cfg.eos_id)
        best_logp, tokens = best_logp[:, 0], tokens[:, 0]  # (A,)
        tokens = tokens.masked_fill(finished, cfg.pad_id)
        scores.index_add_(0, rows, best_logp.masked_fill(finished, 0.0))
        out[rows, t] = tokens
        finished |= (tokens == cfg.eos_id) | (t + 1 >= limits)
        n_finished = int(finished.sum())
        if n_finished == finished.numel():
            break
        if n_finished >= DROP_FINISHED_FRACTION * finished.numel():
            keep = (~finished).nonzero().squeeze(1)  # (A',)
            state, rows, tokens, limits = state.select(keep), rows[keep], tokens[keep], limits[keep]
            finished = finished[keep]
    out, lengths = strip_eos(out, cfg.eos_id, cfg.pad_id)
    return Generation(tokens=out[:, None], scores=scores[:, None], lengths=lengths[:, None])
