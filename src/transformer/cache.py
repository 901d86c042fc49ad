"""DecoderState: the key/value cache of incremental decoding, an explicit value passed in and out.

Self-attention keys/values live in one preallocated buffer for all layers, written in place one
position per step; cross-attention keys/values are computed once per source (§3.2.3, "encoder-decoder
attention": they depend on the memory only) and kept once per source: after ``repeat_rows(k)`` (beam
search) every source row serves k consecutive decoder rows, which attend to it as k queries.

Shapes: L decoder layers, R decoder rows (sentences x beams), B source rows, g = R / B rows per source,
H heads, C capacity, S source length, Dh head dim.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class DecoderState:
    self_k: Tensor  # (L, R, H, C, Dh); positions >= step are unwritten
    self_v: Tensor  # (L, R, H, C, Dh)
    cross_k: Tensor  # (L, B, H, S, Dh)
    cross_v: Tensor  # (L, B, H, S, Dh)
    src_mask: Tensor  # (B, 1, 1, S) bool, True = may attend
    step: int  # number of target positions already in the cache
    # The buffers ``reorder_within_sentences`` writes into (and the old ones become), so beam search's
    # reorder neither allocates nor copies unwritten positions; None until the first reorder.
    spare_k: Tensor | None = None  # (L, R, H, C, Dh)
    spare_v: Tensor | None = None

    @property
    def capacity(self) -> int:
        return self.self_k.size(3)

    @property
    def rows_per_source(self) -> int:
        """g: decoder rows sharing one source row's cross-attention keys/values (1 unless ``repeat_rows``)."""
        return self.self_k.size(1) // max(self.src_mask.size(0), 1)

    def select(self, rows: Tensor) -> DecoderState:
        """Keep (and reorder, or repeat) decoder rows: ``rows`` (R',) int64 indices into R. The result has
        one source row per decoder row."""
        return self._take(rows, rows // self.rows_per_source if self.rows_per_source > 1 else rows)

    def select_sources(self, sources: Tensor) -> DecoderState:
        """Keep (and reorder) source rows together with all g decoder rows of each: ``sources`` (B',) int64
        indices into B. Cross-attention keys/values stay shared (g rows per source)."""
        g = self.rows_per_source
        return self._take((sources[:, None] * g + torch.arange(g, device=sources.device)).view(-1), sources)

    def _take(self, rows: Tensor, sources: Tensor) -> DecoderState:
        """Decoder rows ``rows`` of the self-attention cache and source rows ``sources`` of the rest."""
        return replace(
            self,
            self_k=self.self_k.index_select(1, rows),
            self_v=self.self_v.index_select(1, rows),
            cross_k=self.cross_k.index_select(1, sources),
            cross_v=self.cross_v.index_select(1, sources),
            src_mask=self.src_mask.index_select(0, sources),
            spare_k=None,
            spare_v=None,
        )

    def repeat_rows(self, k: int) -> DecoderState:
        """Every decoder row k times, consecutively (R -> R * k: beam search's beams). Cross-attention
        keys/values and the source mask are not copied: each source row now serves g * k decoder rows."""
        return replace(
            self,
            self_k=self.self_k.repeat_interleave(k, dim=1),
            self_v=self.self_v.repeat_interleave(k, dim=1),
            spare_k=None,
            spare_v=None,
        )

    def reorder_within_sentences(self, rows: Tensor) -> DecoderState:
        """Beam search's reorder: ``rows`` (R,) moves rows only among the beams of one sentence, whose
        cross-attention keys/values and source mask are the same, so only the self-attention cache moves.

        Only the ``step`` written positions are copied, into the spare buffers, which the old buffers then
        become: the old state must not be used afterwards."""
        t = self.step
        moved = []
        for cache, spare in ((self.self_k, self.spare_k), (self.self_v, self.spare_v)):
            if spare is None or spare.shape != cache.shape:
                spare = torch.empty_like(cache)
            torch.index_select(cache[:, :, :, :t], 1, rows, out=spare[:, :, :, :t])
            moved.append(spare)
        return replace(self, self_k=moved[0], self_v=moved[1], spare_k=self.self_k, spare_v=self.self_v)

    def ensure_capacity(self, capacity: int) -> DecoderState:
        """A state whose buffers hold at least ``capacity`` positions (doubling), data kept."""
        if self.self_k.size(3) >= capacity:
            return self
        new = max(capacity, 2 * self.self_k.size(3))
        grow = lambda t: torch.cat([t, t.new_zeros(*t.shape[:3], new - t.size(3), t.size(4))], dim=3)  # noqa: E731
        return replace(self, self_k=grow(self.self_k), self_v=grow(self.self_v), spare_k=None, spare_v=None)

    def advance(self) -> DecoderState:
        return replace(self, step=self.step + 1)
