"""Batches of sentence pairs: the special-token layout, padding, and the paper's token-based batching.

Layout of one pair ``(x, y)`` of subword ids (§3, "shifted right" decoder input):

    src     = x + [EOS]          (source_ids: the one place the source gets its EOS)
    tgt_in  = [BOS] + y          (what the decoder reads)
    tgt_out = y + [EOS]          (what it must predict at each position)

Every tensor is right-padded with ``pad_id`` (0). Shapes: B batch, S source length, T target length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .vocab import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """A padded batch of sentence pairs.

    Attributes:
        src: (B, S) int64, source ids + [EOS], right-padded with ``pad_id``.
        tgt_in: (B, T) int64, [BOS] + target ids, right-padded.
        tgt_out: (B, T) int64, target ids + [EOS], right-padded.
        pad_id: the padding id.
    """

    src: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    pad_id: int = PAD_ID

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on ``device``."""
        return Batch(self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device), self.pad_id)

    def __len__(self) -> int:
        return self.src.size(0)

    @property
    def n_src_tokens(self) -> int:
        """Real (non-pad) tokens in ``src``, EOS included."""
        return int((self.src != self.pad_id).sum())

    @property
    def n_tgt_tokens(self) -> int:
        """Real (non-pad) tokens in ``tgt_out``, EOS included: the number of predictions the loss sums over."""
        return int((self.tgt_out != self.pad_id).sum())


def source_ids(ids: Sequence[int], eos_id: int = EOS_ID) -> list[int]:
    """The encoder input for one sentence: its subword ids followed by EOS.

    The only place the source gets its EOS, so training (``collate``) and translation agree.
    """
    return [int(i) for i in ids] + [eos_id]


def _pad(rows: list[list[int]], pad_id: int) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.int64)


def collate(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    pad_id: int = PAD_ID,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
) -> Batch:
    """Pad a list of ``(source ids, target ids)`` pairs (without specials) into a :class:`Batch`.

    Shapes: S = 1 + the longest source, T = 1 + the longest target.
    """
    if len(pairs) == 0:
        raise ValueError("cannot collate an empty list of pairs")
    src = _pad([source_ids(s, eos_id) for s, _ in pairs], pad_id)
    tgt_in = _pad([[bos_id, *(int(i) for i in t)] for _, t in pairs], pad_id)
    tgt_out = _pad([[*(int(i) for i in t), eos_id] for _, t in pairs], pad_id)
    return Batch(src, tgt_in, tgt_out, pad_id)


class TokenBatchSampler:
    """Token-based batching (§5.1: "each training batch contained a set of sentence pairs containing
    approximately 25000 source tokens and 25000 target tokens").

    Sentences are sorted by length so a batch holds sentences of similar lengths (little padding), then
    packed greedily: a batch is closed when adding the next pair would make its *padded* size,
    ``n_sentences * longest`` (counting the ``extra_tokens`` specials), exceed ``max_tokens`` on the source
    side or on the target side. A pair too long for ``max_tokens`` on its own still forms a batch of one.
    So the ``src``/``tgt_out`` tensors that :func:`collate` makes never hold more than ``max_tokens``
    elements, except for such single long pairs.

    With ``shuffle=True`` each epoch breaks length ties in a fresh random order (so batch contents
    vary) and shuffles the batch order; everything is a function of ``(seed, epoch)`` only. With
    ``shuffle=False`` batches come in increasing length order, the same every epoch.

    Distributed training (``num_replicas > 1``): the epoch's batch list is cut to a multiple of
    ``num_replicas`` by **dropping** the last ``len % num_replicas`` batches (after shuffling, so a
    different few each epoch and no sentence is systematically left out), and rank ``r`` takes batches
    ``r, r + R, r + 2R, ...``: equal counts, disjoint shares. If there are fewer batches than replicas,
    batches are **re-used** (cycled) so every rank still gets one. Evaluate with ``num_replicas=1`` to
    see every sentence.

    Args:
        src_lengths: subword count of each source sentence (without EOS).
        tgt_lengths: subword count of each target sentence (without BOS/EOS).
        max_tokens: the token budget per batch and side.
        seed: the shuffling seed.
        shuffle: shuffle as described above.
        num_replicas: number of data-parallel processes.
        rank: this process, ``0 <= rank < num_replicas``.
        extra_tokens: added to every length to account for the special tokens ``collate`` adds (1).
    """

    def __init__(
        self,
        src_lengths: Sequence[int],
        tgt_lengths: Sequence[int],
        max_tokens: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        extra_tokens: int = 1,
    ) -> None:
        src = np.asarray(src_lengths, dtype=np.int64).reshape(-1)
        tgt = np.asarray(tgt_lengths, dtype=np.int64).reshape(-1)
        if len(src) != len(tgt):
            raise ValueError(f"src_lengths has {len(src)} entries but tgt_lengths has {len(tgt)}")
        if len(src) == 0:
            raise ValueError("no sentences to batch")
        if (src < 0).any() or (tgt < 0).any():
            raise ValueError("lengths must be non-negative")
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, num_replicas={num_replicas}")
        self.src_lengths = src + extra_tokens
        self.tgt_lengths = tgt + extra_tokens
        self.max_tokens = max_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        # The sorted length sequence does not depend on how ties are broken, so neither does the
        # number of batches: count it once.
        self._n_batches = len(self._pack(self._order(None)))

    def _order(self, rng: np.random.Generator | None) -> np.ndarray:
        """Indices sorted by (longer side, target, source) length; ties in random order when ``rng``."""
        n = len(self.src_lengths)
        perm = rng.permutation(n) if rng is not None else np.arange(n)
        src, tgt = self.src_lengths[perm], self.tgt_lengths[perm]
        return perm[np.lexsort((src, tgt, np.maximum(src, tgt)))]  # lexsort is stable: last key is primary

    def _pack(self, order: np.ndarray) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        src_max = tgt_max = 0
        for i, s, t in zip(order.tolist(), self.src_lengths[order].tolist(), self.tgt_lengths[order].tolist()):
            new_src, new_tgt = max(src_max, s), max(tgt_max, t)
            n = len(current) + 1
            if current and (n * new_src > self.max_tokens or n * new_tgt > self.max_tokens):
                batches.append(current)
                current, new_src, new_tgt = [], s, t
            current.append(i)
            src_max, tgt_max = new_src, new_tgt
        batches.append(current)
        return batches

    def _per_rank(self) -> int:
        return max(1, self._n_batches // self.num_replicas)

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches (lists of sentence indices) for ``epoch``; deterministic in ``(seed, epoch)``."""
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        batches = self._pack(self._order(rng))
        if rng is not None:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        total = self._per_rank() * self.num_replicas
        kept = [batches[j % len(batches)] for j in range(total)]  # drop the tail, or cycle if too few
        return kept[self.rank :: self.num_replicas]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that iteration yields (as ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        """The batches of the current epoch, so the sampler can serve as a ``DataLoader`` batch_sampler."""
        return iter(self.batches(self.epoch))

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return self._per_rank()
