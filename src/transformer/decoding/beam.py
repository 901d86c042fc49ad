"""Beam search (§6.1: beam 4, length penalty alpha = 0.6), all sentences and beams as one batch.

Each step extends the K live hypotheses of every sentence, takes the 2K best candidates, moves those
that end (EOS, or the length limit) among the first K into the sentence's finished set, scored
log P / lp, and keeps the K best that go on. A sentence is done when no live hypothesis can beat its
n_best-th finished one any more, so the search returns the best of all it explored. With alpha = 0 that
happens as soon as the best candidate ends: beam size 1 is then exactly greedy decoding. Two shortcuts
return worse translations: stopping at K finished (fairseq) lets confident models fill the finished set
with unlikely early EOS hypotheses before the best one ends; stopping when the best candidate ends
(OpenNMT) with alpha > 0 drops the longer hypotheses the length penalty would rank first (on Multi30k val
that cut outputs to 0.95 of the reference length and cost 0.25-0.6 BLEU, README "Multi30k").

Shapes: B batch, K beam size, V vocabulary, L most output tokens, R = B * K rows of the cache, A sentences
not yet done (done ones leave the batch, ``DROP_FINISHED_FRACTION``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .common import Generation, Seq2Seq, check_source, next_log_probs, output_limits, strip_eos
from .length_penalty import length_penalty as gnmt_length_penalty

# Sentences that are done leave the batch once at least this fraction of those still decoded are done
# (each time the cache is copied once).
DROP_FINISHED_FRACTION = 0.25


def _merge_finished(
    fin_scores: Tensor, fin_seqs: Tensor, cand_scores: Tensor, cand_seqs: Tensor, keep: int
) -> tuple[Tensor, Tensor]:
    """The ``keep`` best of the old finished set and the new finished candidates, per sentence.

    Shapes: fin_scores (B, K), fin_seqs (B, K, L), cand_scores (B, 2K), cand_seqs (B, 2K, L).
    """
    scores = torch.cat([fin_scores, cand_scores], dim=1)  # (B, 3K)
    seqs = torch.cat([fin_seqs, cand_seqs], dim=1)  # (B, 3K, L)
    best, idx = scores.topk(keep, dim=1)  # (B, K)
    return best, seqs.gather(1, idx[:, :, None].expand(-1, -1, seqs.size(2)))


def _sentence_done(fin_scores: Tensor, best_live: Tensor, limits: Tensor, n_best: int, alpha: float) -> Tensor:
    """Which sentences can stop: no live hypothesis can beat their n_best-th finished one any more.

    A live hypothesis with log P = s can at best end at the length limit with s unchanged, so it
    scores at most s / lp(limit) (s <= 0, lp grows with length): the n best finished are then final.
    Shapes: (B, K), (B,), (B,) -> (B,).
    """
    bound = best_live / gnmt_length_penalty(limits.to(best_live.dtype), alpha)  # (B,)
    return fin_scores[:, n_best - 1] >= bound


@torch.inference_mode()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    beam_size: int = 4,
    max_len: int | None = None,
    length_penalty: float = 0.6,
    min_len: int = 0,
    n_best: int = 1,
) -> Generation:
    """The n best translations of each sentence, scored log P(Y|X) / lp(Y).

    ``length_penalty`` is alpha of lp(Y) = ((5 + |Y|) / 6)^alpha; 0 ranks by log P alone.

    Shapes: src (B, S) -> Generation with tokens (B, n_best, L).
    """
    check_source(src)
    if beam_size < 1:
        raise ValueError(f"beam_size={beam_size} must be >= 1")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best={n_best} must be between 1 and beam_size={beam_size}")
    if length_penalty < 0:  # the stopping bound needs lp to grow with length
        raise ValueError(f"length_penalty={length_penalty} must be >= 0")
    cfg = model.cfg
    b, k, dev = src.size(0), beam_size, src.device
    limits = output_limits(src, cfg.pad_id, max_len, min_len)[:, None]  # (B, 1)
    steps = int(limits.max())
    state = model.start_state(model.encode(src), model.source_mask(src), capacity=steps)
    state = state.repeat_rows(k)  # B * K decoder rows (sentence-major); cross keys stay B rows

    # The loop runs on the A sentences not yet done (A = B at first); ``sentence`` maps them to the batch,
    # and a sentence's finished set moves to ``best_scores``/``best_seqs`` when it leaves.
    sentence = torch.arange(b, device=dev)  # (A,)
    scores = torch.full((b, k), -torch.inf, device=dev)
    scores[:, 0] = 0.0  # all beams start identical: let only the first one expand
    seqs = torch.full((b, k, steps), cfg.pad_id, dtype=torch.long, device=dev)
    fin_scores = torch.full((b, k), -torch.inf, device=dev)
    fin_seqs = seqs.clone()
    best_scores, best_seqs = fin_scores.clone(), fin_seqs.clone()  # (B, K), (B, K, L)
    tokens = torch.full((b * k,), cfg.bos_id, dtype=torch.long, device=dev)
    first_k = torch.arange(2 * k, device=dev)[None] < k  # (1, 2K)
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    sentence_rows = torch.arange(b, device=dev)[:, None] * k  # (A, 1): each sentence's first cache row

    for t in range(steps):
        logits, state = model.decode_step(tokens, state)
        logp = next_log_probs(logits, t, min_len, cfg.pad_id, cfg.bos_id, cfg.eos_id)  # (A K, V)
        vocab = logp.size(-1)
        cand = (scores[:, :, None] + logp.view(-1, k, vocab)).view(-1, k * vocab)  # (A, K*V)
        top_scores, top_idx = cand.topk(2 * k, dim=1)  # (A, 2K)
        origin, cand_tok = top_idx // vocab, top_idx % vocab  # (A, 2K) each
        cand_seqs = seqs.gather(1, origin[:, :, None].expand(-1, -1, steps)).clone()  # (A, 2K, L)
        cand_seqs[:, :, t] = cand_tok

        ends = (cand_tok == cfg.eos_id) | (t + 1 >= limits)  # (A, 2K)
        newly = ends & first_k & (top_scores > -torch.inf) & ~done[:, None]
        lp = gnmt_length_penalty(t + 1, length_penalty)  # |Y| counts the EOS (or last) token
        cand_norm = torch.where(newly, top_scores / lp, -torch.inf)
        fin_scores, fin_seqs = _merge_finished(fin_scores, fin_seqs, cand_norm, cand_seqs, k)

        go_on = torch.where(ends, -torch.inf, top_scores)  # (A, 2K)
        scores, pick = go_on.topk(k, dim=1)  # (A, K): the K best that did not end
        seqs = cand_seqs.gather(1, pick[:, :, None].expand(-1, -1, steps))
        tokens = cand_tok.gather(1, pick).view(-1)
        done |= _sentence_done(fin_scores, scores[:, 0], limits[:, 0], n_best, length_penalty)
        n_done = int(done.sum())
        if t + 1 == steps or n_done == done.numel():
            break
        state = state.reorder_within_sentences((sentence_rows + origin.gather(1, pick)).view(-1))
        if n_done >= DROP_FINISHED_FRACTION * done.numel():  # done sentences leave the batch
            left, keep = done.nonzero().squeeze(1), (~done).nonzero().squeeze(1)
            best_scores[sentence[left]], best_seqs[sentence[left]] = fin_scores[left], fin_seqs[left]
            sentence, scores, seqs, fin_scores, fin_seqs, limits, done = (
                x[keep] for x in (sentence, scores, seqs, fin_scores, fin_seqs, limits, done))
            tokens = tokens.view(-1, k)[keep].view(-1)
            state = state.select_sources(keep)
            sentence_rows = sentence_rows[: keep.numel()]

    best_scores[sentence], best_seqs[sentence] = fin_scores, fin_seqs
    out, lengths = strip_eos(best_seqs[:, :n_best], cfg.eos_id, cfg.pad_id)
    return Generation(tokens=out, scores=best_scores[:, :n_best], lengths=lengths)
