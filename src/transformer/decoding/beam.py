"""Beam search (§6.1), all sentences and beams as one batch.

Each step extends the K live hypotheses of every sentence, takes the 2K best candidates, moves those
that end (EOS, or the length limit) among the first K into the sentence's finished set, scored
log P / lp, and keeps the K best that go on. A sentence is done when no live hypothesis can beat its
n_best-th finished one any more, so the search returns the best of all it explored. With alpha = 0 that
happens as soon as the best candidate ends: beam size 1 is then exactly greedy decoding. Two shortcuts
return worse translations: stopping at K finished (fairseq) lets confident models fill the finished set
with unlikely early EOS hypotheses before the best one ends; stopping when the best candidate ends
(OpenNMT) with alpha > 0 drops the longer hypotheses the length penalty would rank first (on Multi30k val
that cut outputs to 0.95 of the reference length, README "Multi30k").

Shapes: B batch, K beam size, V vocabulary, L most output tokens, R = B * K rows of the cache, A sentences
not yet done (done ones leave the batch, ``DROP_FINISHED_FRACTION``).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _best(x: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The n largest of each row and their columns, equal values in column order (a stable sort: the few
    candidates of a beam step are ordered the same whatever the kernel): (A, M) -> (A, n), (A, n)."""
    values, columns = x.sort(dim=1, descending=True, stable=True)
    return values[:, :n], columns[:, :n]


@dataclass
class _Beams:
    """The search over the A sentences still decoded: live hypotheses and the best finished ones."""

    sentence: Tensor  # (A,) int64: the batch row of each sentence
    scores: Tensor  # (A, K) log P of the live hypotheses, best first (-inf: none)
    seqs: Tensor  # (A, K, L) their tokens so far
    fin_scores: Tensor  # (A, K) log P / lp of the finished ones, best first (-inf: none)
    fin_seqs: Tensor  # (A, K, L)
    limits: Tensor  # (A,) most output tokens
    done: Tensor  # (A,) bool: nothing live can beat the n_best-th finished hypothesis

    @staticmethod
    def start(limits: Tensor, k: int, pad_id: int) -> _Beams:
        b, steps, dev = limits.size(0), int(limits.max()), limits.device
        scores = torch.full((b, k), -torch.inf, device=dev)
        scores[:, 0] = 0.0  # all beams start identical: let only the first one expand
        seqs = torch.full((b, k, steps), pad_id, dtype=torch.long, device=dev)
        return _Beams(torch.arange(b, device=dev), scores, seqs, torch.full((b, k), -torch.inf, device=dev),
                      seqs.clone(), limits, torch.zeros(b, dtype=torch.bool, device=dev))

    def extend(
        self, logp: Tensor, tokens: Tensor, t: int, options: DecodeOptions, eos_id: int
    ) -> tuple[Tensor, Tensor]:
        """Step ``t``: extend the live hypotheses by their most probable next tokens, ``tokens`` (A G, W) of
        log-probability ``logp`` (A G, W), for the first G of the K beams (G = 1 at step 0, when the beams are
        still one), finish the candidates that end, keep the K best that go on. The 2K best candidates of a
        sentence are among the 2K best of each beam, so W = 2K tokens a beam suffice.
        Returns the last tokens (A K,) and parent beams (A, K) of those kept."""
        a, k, steps = self.scores.size(0), self.scores.size(1), self.seqs.size(2)
        g, width = logp.size(0) // a, logp.size(1)
        cand = (self.scores[:, :g, None] + logp.view(a, g, width)).view(a, g * width)  # (A, G*W)
        if cand.size(1) < 2 * k:  # a vocabulary smaller than the beam: the missing candidates are -inf
            cand = torch.nn.functional.pad(cand, (0, 2 * k - cand.size(1)), value=-torch.inf)
        top_scores, top_idx = _best(cand, 2 * k)  # (A, 2K)
        top_idx = top_idx.clamp_max(g * width - 1)
        origin, cand_tok = top_idx // width, tokens.reshape(a, g * width).gather(1, top_idx)  # (A, 2K) each
        cand_seqs = self.seqs.gather(1, origin[:, :, None].expand(-1, -1, steps)).clone()  # (A, 2K, L)
        cand_seqs[:, :, t] = cand_tok

        ends = (cand_tok == eos_id) | (t + 1 >= self.limits[:, None])  # (A, 2K)
        first_k = torch.arange(2 * k, device=ends.device)[None] < k  # (1, 2K)
        newly = ends & first_k & (top_scores > -torch.inf) & ~self.done[:, None]
        lp = options.lp(t + 1)  # |Y| counts the EOS (or last) token
        self._merge_finished(torch.where(newly, top_scores / lp, -torch.inf), cand_seqs)

        self.scores, pick = _best(torch.where(ends, -torch.inf, top_scores), k)  # (A, K): the best going on
        self.seqs = cand_seqs.gather(1, pick[:, :, None].expand(-1, -1, steps))
        self.done |= self._cannot_improve(options)
        return cand_tok.gather(1, pick).view(-1), origin.gather(1, pick)

    def _merge_finished(self, cand_scores: Tensor, cand_seqs: Tensor) -> None:
        """Keep the K best of the finished set and the newly finished candidates (A, 2K), (A, 2K, L)."""
        scores = torch.cat([self.fin_scores, cand_scores], dim=1)  # (A, 3K)
        seqs = torch.cat([self.fin_seqs, cand_seqs], dim=1)  # (A, 3K, L)
        self.fin_scores, idx = _best(scores, self.fin_scores.size(1))  # (A, K)
        self.fin_seqs = seqs.gather(1, idx[:, :, None].expand(-1, -1, seqs.size(2)))

    def _cannot_improve(self, options: DecodeOptions) -> Tensor:
        """Sentences whose n_best-th finished hypothesis no live one can beat any more: (A,) bool.

        A live hypothesis with log P = s can at best end at the length limit with s unchanged, so it
        scores at most s / lp(limit) (s <= 0, lp grows with length): the n best finished are then final.
        """
        bound = self.scores[:, 0] / options.lp(self.limits.to(self.scores.dtype))
        return self.fin_scores[:, options.n_best - 1] >= bound

    def select(self, keep: Tensor) -> _Beams:
        """Only the sentences ``keep`` (A',) int64."""
        return _Beams(*(x[keep] for x in (self.sentence, self.scores, self.seqs, self.fin_scores, self.fin_seqs,
                                          self.limits, self.done)))


@torch.inference_mode()
def beam_search(model: Seq2Seq, src: Tensor, options: DecodeOptions | None = None) -> Generation:
    """The ``options.n_best`` best translations of each sentence, scored log P(Y|X) / lp(Y) (``DecodeOptions``).

    Shapes: src (B, S) -> Generation with tokens (B, n_best, L).
    """
    check_source(src)
    options = options or DecodeOptions()
    cfg, b, k = model.cfg, src.size(0), options.beam_size
    beams = _Beams.start(output_limits(src, cfg.pad_id, options), k, cfg.pad_id)
    steps = beams.seqs.size(2)
    # The K beams of a sentence start as one: step 0 decodes B rows, then each becomes K (sentence-major); the
    # cross-attention keys stay B rows.
    state = model.start_state(model.encode(src), model.source_mask(src), capacity=steps)
    best_scores, best_seqs = beams.fin_scores.clone(), beams.fin_seqs.clone()  # (B, K), (B, K, L)
    tokens = torch.full((b,), cfg.bos_id, dtype=torch.long, device=src.device)  # (A,), then (A K,)
    first_rows = torch.arange(b, device=src.device)[:, None] * k  # (A, 1): each sentence's first cache row

    for t in range(steps):
        logits, state = model.decode_step(tokens, state)  # step 0: one row per sentence, then K
        logp, next_tokens = top_next_tokens(logits, 2 * k, t, options.min_len, cfg.pad_id, cfg.bos_id, cfg.eos_id)
        tokens, parents = beams.extend(logp, next_tokens, t, options, cfg.eos_id)  # (A K,), (A, K)
        n_done = int(beams.done.sum())
        if t + 1 == steps or n_done == beams.done.numel():
            break
        # after step 0 every beam's parent is its sentence's one row
        state = state.repeat_rows(k) if t == 0 else state.reorder_within_sentences((first_rows + parents).view(-1))
        if n_done >= DROP_FINISHED_FRACTION * beams.done.numel():  # done sentences leave the batch
            left, keep = beams.done.nonzero().squeeze(1), (~beams.done).nonzero().squeeze(1)
            best_scores[beams.sentence[left]] = beams.fin_scores[left]
            best_seqs[beams.sentence[left]] = beams.fin_seqs[left]
            beams, tokens = beams.select(keep), tokens.view(-1, k)[keep].view(-1)
            state, first_rows = state.select_sources(keep), first_rows[: keep.numel()]

    best_scores[beams.sentence], best_seqs[beams.sentence] = beams.fin_scores, beams.fin_seqs
    out, lengths = strip_eos(best_seqs[:, : options.n_best], cfg.eos_id, cfg.pad_id)
    return Generation(tokens=out, scores=best_scores[:, : options.n_best], lengths=lengths)
