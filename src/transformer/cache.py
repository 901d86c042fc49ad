"""DecoderState: the key/value cache of incremental decoding, an explicit value passed in and out.

Self-attention keys/values live in one preallocated buffer for all layers, written in place one position per
step. Cross-attention keys/values are computed once per source (§3.2.3, "encoder-decoder attention": they
depend on the memory only) and kept once per source.

After ``repeat_rows(k)`` (beam search) every source row serves g = k consecutive decoder rows, its beams. Their
self-attention keys sit side by side at each position (slots), and a beam search reorder moves no key: it
rewrites the ``lineage``, which says for every beam and position which slot holds that beam's key (the key of
its ancestor then). Attention reads a beam's keys through it (``MultiHeadAttention.attend_beams``), so a step's
cost does not grow with a copy of everything written so far.

Shapes: L decoder layers, B source rows, g decoder rows (beams) per source row, R = B g decoder rows (row
b g + j is beam j of source row b), H heads, C capacity, S source length, Dh head dim.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class DecoderState:
    self_k: Tensor  # (L, B, H, C, g, Dh): at position s, slot i; positions >= step are unwritten
    self_v: Tensor  # (L, B, H, C, g, Dh)
    cross_k: Tensor  # (L, B, H, S, Dh)
    cross_v: Tensor  # (L, B, H, S, Dh)
    src_mask: Tensor  # (B, 1, 1, S) bool, True = may attend
    step: int  # number of target positions already in the cache
    # (B, g, C) int64: lineage[b, j, s] = the slot at position s that holds beam j's key there; slot j at the
    # positions >= step (the step writes beam j's key into slot j). None: slot j everywhere.
    lineage: Tensor | None = None

    @property
    def capacity(self) -> int:
        return self.self_k.size(3)

    @property
    def rows_per_source(self) -> int:
        """g: decoder rows (beams) sharing one source row's cross-attention keys/values and cache slots."""
        return self.self_k.size(4)

    def key_slots(self) -> Tensor | None:
        """Where each row's keys of positions 0..step lie in its source row's (step + 1) g keys (position-major,
        slots inner): (B, 1, g, step + 1) int64; None when g = 1 (the keys are the row's own, in order)."""
        g, t = self.rows_per_source, self.step + 1
        if g == 1:
            return None
        lineage = self._lineage()[:, None, :, :t]  # (B, 1, g, t)
        return lineage + torch.arange(t, device=lineage.device) * g

    def row_caches(self) -> tuple[Tensor, Tensor]:
        """Every decoder row's own keys and values, in row order and position order (for ``select`` and for
        tests): 2 x (L, R, H, C, Dh), unwritten past ``step``; a copy, or views of the cache where g = 1."""
        g = self.rows_per_source
        if g == 1:
            return self.self_k[:, :, :, :, 0], self.self_v[:, :, :, :, 0]
        b, c, dev = self.self_k.size(1), self.capacity, self.self_k.device
        at_b, at_s = torch.arange(b, device=dev).view(b, 1, 1), torch.arange(c, device=dev).view(1, 1, c)
        # x[l, b, h, s, lineage[b, j, s]] -> (B, g, C, L, H, Dh) -> (L, B g, H, C, Dh)
        picked = (x[:, at_b, :, at_s, self._lineage()] for x in (self.self_k, self.self_v))
        k, v = (x.permute(3, 0, 1, 4, 2, 5).reshape(x.size(3), b * g, x.size(4), c, x.size(5)) for x in picked)
        return k, v

    def select(self, rows: Tensor) -> DecoderState:
        """Keep (and reorder, or repeat) decoder rows: ``rows`` (R',) int64 indices into R. The result has
        one source row per decoder row (g = 1)."""
        g = self.rows_per_source
        sources = rows // g if g > 1 else rows
        self_k, self_v = self.row_caches()
        return DecoderState(
            self_k=self_k.index_select(1, rows).unsqueeze(4),
            self_v=self_v.index_select(1, rows).unsqueeze(4),
            cross_k=self.cross_k.index_select(1, sources),
            cross_v=self.cross_v.index_select(1, sources),
            src_mask=self.src_mask.index_select(0, sources),
            step=self.step,
        )

    def select_sources(self, sources: Tensor) -> DecoderState:
        """Keep (and reorder) source rows together with all g decoder rows of each: ``sources`` (B',) int64
        indices into B. Cross-attention keys/values stay shared (g rows per source)."""
        return replace(
            self,
            self_k=self.self_k.index_select(1, sources),
            self_v=self.self_v.index_select(1, sources),
            cross_k=self.cross_k.index_select(1, sources),
            cross_v=self.cross_v.index_select(1, sources),
            src_mask=self.src_mask.index_select(0, sources),
            lineage=None if self.lineage is None else self.lineage.index_select(0, sources),
        )

    def repeat_rows(self, k: int) -> DecoderState:
        """Every decoder row k times, consecutively (R -> R k: beam search's beams; g -> g k). No key is
        copied: the old g slots stay, and the k copies of a beam follow its lineage. Cross-attention
        keys/values and the source mask are not copied either: each source row now serves g k decoder rows."""
        (n, b, h, c, g, d), t = self.self_k.shape, self.step
        lineage = self._identity(b, g * k, c)
        lineage[:, :, :t] = self._lineage()[:, :, :t].repeat_interleave(k, dim=1)
        grown = []
        for cache in (self.self_k, self.self_v):
            new = cache.new_empty(n, b, h, c, g * k, d)
            new[:, :, :, :t, :g] = cache[:, :, :, :t]
            new[:, :, :, :t, g:] = 0.0  # slots no beam reads, but attention multiplies them by weight 0: not NaN
            grown.append(new)
        return replace(self, self_k=grown[0], self_v=grown[1], lineage=lineage)

    def reorder_within_sentences(self, rows: Tensor) -> DecoderState:
        """Beam search's reorder: ``rows`` (R,) moves rows only among the beams of one sentence (row r of the
        result continues row rows[r], of the same source row), whose cross-attention keys/values and source
        mask are the same. Only the lineage moves, (R, step) indices; no key or value is copied. (With g = 1,
        rows of equal sources that each keep a copy: their caches are copied, as ``select`` does.)"""
        (b, g, c), t = (self.self_k.size(1), self.rows_per_source, self.capacity), self.step
        if g == 1:
            return self.select(rows)
        lineage = self._identity(b, g, c)
        lineage[:, :, :t] = self._lineage().reshape(b * g, c)[rows, :t].view(b, g, t)
        return replace(self, lineage=lineage)

    def ensure_capacity(self, capacity: int) -> DecoderState:
        """A state whose buffers hold at least ``capacity`` positions (doubling), data kept."""
        if self.capacity >= capacity:
            return self
        extra = max(capacity, 2 * self.capacity) - self.capacity  # positions added
        shape = self.self_k.shape
        zeros = self.self_k.new_zeros(*shape[:3], extra, *shape[4:])  # (L, B, H, extra, g, Dh)
        return replace(
            self,
            self_k=torch.cat([self.self_k, zeros], dim=3),
            self_v=torch.cat([self.self_v, zeros], dim=3),
            lineage=None if self.lineage is None else
            torch.cat([self.lineage, self._identity(shape[1], shape[4], extra)], dim=2),
        )

    def advance(self) -> DecoderState:
        return replace(self, step=self.step + 1)

    def _lineage(self) -> Tensor:
        """The lineage, slot j everywhere where there is none: (B, g, C) int64 (maybe a broadcast view)."""
        if self.lineage is not None:
            return self.lineage
        b, g, c = self.self_k.size(1), self.rows_per_source, self.capacity
        return torch.arange(g, device=self.self_k.device).view(1, g, 1).expand(b, g, c)

    def _identity(self, b: int, g: int, c: int) -> Tensor:
        """A fresh (B, g, C) int64 lineage of slot j everywhere."""
        return torch.arange(g, device=self.self_k.device).view(1, g, 1).repeat(b, 1, c)
