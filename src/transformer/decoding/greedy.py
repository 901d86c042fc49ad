"""Greedy decoding: the most probable token at every step, all sentences of a batch at once.

Shapes: B batch, S source length, L output length, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Generation, Seq2Seq, check_source, next_log_probs, output_limits, strip_eos


@torch.inference_mode()
def greedy_search(model: Seq2Seq, src: Tensor, max_len: int | None = None, min_len: int = 0) -> Generation:
    """y_t = argmax_v P(v | y_<t, x) until EOS or the sentence's length limit.

    Shapes: src (B, S) -> Generation with tokens (B, 1, L).
    """
    check_source(src)
    cfg = model.cfg
    b = src.size(0)
    limits = output_limits(src, cfg.pad_id, max_len, min_len)  # (B,)
    steps = int(limits.max())
    src_mask = model.source_mask(src)
    state = model.start_state(model.encode(src), src_mask, capacity=steps)
    tokens = torch.full((b,), cfg.bos_id, dtype=torch.long, device=src.device)
    out = torch.full((b, steps), cfg.pad_id, dtype=torch.long, device=src.device)
    scores = torch.zeros(b, device=src.device)
    finished = torch.zeros(b, dtype=torch.bool, device=src.device)
    for t in range(steps):
        logits, state = model.decode_step(tokens, state)
        logp = next_log_probs(logits, t, min_len, cfg.pad_id, cfg.bos_id, cfg.eos_id)  # (B, V)
        best_logp, tokens = logp.max(dim=-1)  # (B,)
        tokens = tokens.masked_fill(finished, cfg.pad_id)
        scores += best_logp.masked_fill(finished, 0.0)
        out[:, t] = tokens
        finished |= (tokens == cfg.eos_id) | (t + 1 >= limits)
        if bool(finished.all()):
            break
    out, lengths = strip_eos(out, cfg.eos_id, cfg.pad_id)
    return Generation(tokens=out[:, None], scores=scores[:, None], lengths=lengths[:, None])
