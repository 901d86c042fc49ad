"""Batching: the BOS/EOS layout, padding, and the token-budget sampler's guarantees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer.data.batching import Batch, TokenBatchSampler, collate, source_ids


def test_source_ids_appends_eos() -> None:
    assert source_ids([5, 6, 7]) == [5, 6, 7, 2]
    assert source_ids([], eos_id=9) == [9]


def test_collate_layout_and_padding() -> None:
    batch = collate([([5, 6, 7], [8, 9]), ([10], [11, 12, 13, 14])])
    assert batch.src.dtype == batch.tgt_in.dtype == batch.tgt_out.dtype == torch.int64
    assert batch.src.tolist() == [[5, 6, 7, 2], [10, 2, 0, 0]]
    assert batch.tgt_in.tolist() == [[1, 8, 9, 0, 0], [1, 11, 12, 13, 14]]
    assert batch.tgt_out.tolist() == [[8, 9, 2, 0, 0], [11, 12, 13, 14, 2]]
    # tgt_in is tgt_out shifted right by one with BOS in front (teacher forcing).
    real = batch.tgt_in[:, 1:] != 0
    assert torch.equal(batch.tgt_in[:, 1:][real], batch.tgt_out[:, :-1][real])
    assert (batch.n_src_tokens, batch.n_tgt_tokens, len(batch)) == (6, 8, 2)


def test_collate_custom_ids_and_empty_input() -> None:
    batch = collate([([4], [])], pad_id=7, bos_id=8, eos_id=9)
    assert (batch.src.tolist(), batch.tgt_in.tolist(), batch.tgt_out.tolist()) == ([[4, 9]], [[8]], [[9]])
    assert batch.pad_id == 7
    with pytest.raises(ValueError):
        collate([])


def test_batch_to_keeps_values() -> None:
    batch = collate([([5], [6])])
    moved = batch.to("cpu")
    assert isinstance(moved, Batch)
    assert all(
        torch.equal(a, b)
        for a, b in zip((moved.src, moved.tgt_in, moved.tgt_out), (batch.src, batch.tgt_in, batch.tgt_out))
    )


def random_lengths(n: int, seed: int = 0, longest: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, longest, n), rng.integers(1, longest, n)


def padded_sizes(batch: list[int], src: np.ndarray, tgt: np.ndarray) -> tuple[int, int]:
    """(B * S, B * T) of the tensors collate would build (S, T include the one special token)."""
    return len(batch) * (int(src[batch].max()) + 1), len(batch) * (int(tgt[batch].max()) + 1)


def test_token_budget_respected_on_collated_tensors() -> None:
    src, tgt = random_lengths(500)
    sampler = TokenBatchSampler(src, tgt, max_tokens=400, seed=1)
    for indices in sampler.batches(0):
        pairs = [([7] * int(src[i]), [7] * int(tgt[i])) for i in indices]
        batch = collate(pairs)
        assert batch.src.numel() <= 400 and batch.tgt_out.numel() <= 400 and batch.tgt_in.numel() <= 400


def test_batches_are_full_and_hold_similar_lengths() -> None:
    src, tgt = random_lengths(2000)
    sampler = TokenBatchSampler(src, tgt, max_tokens=600, shuffle=False)
    batches = sampler.batches(0)
    sizes = [max(padded_sizes(b, src, tgt)) for b in batches]
    assert np.mean(sizes) > 0.85 * 600  # greedy packing fills batches
    real = sum(int(src[b].sum() + len(b)) for b in batches)
    padded = sum(padded_sizes(b, src, tgt)[0] for b in batches)
    assert real / padded > 0.8  # sorting by length keeps padding low (random batches: ~0.5)


def test_every_index_exactly_once_per_epoch_and_deterministic() -> None:
    src, tgt = random_lengths(300, longest=12)  # many length ties
    sampler = TokenBatchSampler(src, tgt, max_tokens=300, seed=5)
    epoch0 = sampler.batches(0)
    assert sorted(i for b in epoch0 for i in b) == list(range(300))
    assert epoch0 == TokenBatchSampler(src, tgt, max_tokens=300, seed=5).batches(0)  # same (seed, epoch)
    epoch1 = sampler.batches(1)
    assert sorted(i for b in epoch1 for i in b) == list(range(300))
    assert epoch1 != epoch0  # a new epoch reshuffles the batch order ...
    assert {frozenset(b) for b in epoch1} != {frozenset(b) for b in epoch0}  # ... and the contents of ties
    assert TokenBatchSampler(src, tgt, max_tokens=300, seed=6).batches(0) != epoch0
    assert len(sampler) == len(epoch0) == len(epoch1)
    sampler.set_epoch(1)
    assert list(sampler) == epoch1


def test_no_shuffle_is_sorted_and_epoch_independent() -> None:
    src, tgt = random_lengths(200)
    sampler = TokenBatchSampler(src, tgt, max_tokens=250, shuffle=False)
    batches = sampler.batches(0)
    assert batches == sampler.batches(7)
    longest = [int(np.maximum(src[b], tgt[b]).max()) for b in batches]
    assert longest == sorted(longest)


def test_overlong_sentence_forms_its_own_batch() -> None:
    sampler = TokenBatchSampler([3, 500, 4, 2], [3, 2, 600, 5], max_tokens=50, shuffle=False)
    batches = sampler.batches(0)
    assert [1] in batches and [2] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]


@pytest.mark.parametrize(("n", "replicas"), [(300, 2), (300, 3), (301, 4)])
def test_replicas_get_equal_disjoint_shares(n: int, replicas: int) -> None:
    src, tgt = random_lengths(n, seed=n)
    total = len(TokenBatchSampler(src, tgt, max_tokens=200, seed=2).batches(3))
    shares = [
        TokenBatchSampler(src, tgt, 200, seed=2, num_replicas=replicas, rank=r).batches(3) for r in range(replicas)
    ]
    assert len({len(s) for s in shares}) == 1  # equal counts, so no rank waits on another
    assert len(shares[0]) == total // replicas == len(TokenBatchSampler(src, tgt, 200, num_replicas=replicas))
    seen = [i for share in shares for b in share for i in b]
    assert len(seen) == len(set(seen))  # disjoint: the tail batches are dropped, never duplicated
    dropped = n - len(seen)
    assert dropped == 0 if total % replicas == 0 else dropped > 0


def test_fewer_batches_than_replicas_reuses_batches() -> None:
    shares = [TokenBatchSampler([2, 3], [2, 3], 100, num_replicas=3, rank=r).batches(0) for r in range(3)]
    assert [len(s) for s in shares] == [1, 1, 1]
    assert all(sorted(s[0]) == [0, 1] for s in shares)


def test_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        TokenBatchSampler([1, 2], [1], 10)
    with pytest.raises(ValueError):
        TokenBatchSampler([], [], 10)
    with pytest.raises(ValueError):
        TokenBatchSampler([1], [1], 0)
    with pytest.raises(ValueError):
        TokenBatchSampler([1], [1], 10, num_replicas=2, rank=2)


@settings(max_examples=40)
@given(
    lengths=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=80),
    max_tokens=st.integers(1, 200),
    seed=st.integers(0, 3),
    epoch=st.integers(0, 3),
)
def test_sampler_invariants(lengths: list[tuple[int, int]], max_tokens: int, seed: int, epoch: int) -> None:
    src, tgt = np.array([s for s, _ in lengths]), np.array([t for _, t in lengths])
    batches = TokenBatchSampler(src, tgt, max_tokens, seed=seed).batches(epoch)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or max(padded_sizes(b, src, tgt)) <= max_tokens
