"""Masks (transformer.masks): bool, True = may attend; shapes (B,1,1,S), (1,1,T,T), (B,1,T,T)."""

from __future__ import annotations

import torch

from transformer.masks import causal_mask, source_mask, target_mask


def test_source_mask_marks_real_tokens() -> None:
    src = torch.tensor([[5, 6, 7, 0], [8, 0, 0, 0], [3, 4, 5, 6]])
    mask = source_mask(src, pad_id=0)
    assert mask.shape == (3, 1, 1, 4)
    assert mask.dtype == torch.bool
    expected = torch.tensor([[True, True, True, False], [True, False, False, False], [True] * 4])
    assert torch.equal(mask[:, 0, 0], expected)


def test_source_mask_uses_the_given_pad_id() -> None:
    src = torch.tensor([[0, 9, 9], [9, 0, 0]])
    assert torch.equal(source_mask(src, pad_id=9)[:, 0, 0], torch.tensor([[True, False, False], [False, True, True]]))


def test_causal_mask_is_lower_triangular() -> None:
    mask = causal_mask(4)
    assert mask.shape == (1, 1, 4, 4)
    assert mask.dtype == torch.bool
    for q in range(4):
        for k in range(4):
            assert bool(mask[0, 0, q, k]) == (k <= q), (q, k)


def test_causal_mask_of_length_one_attends_to_itself() -> None:
    assert torch.equal(causal_mask(1), torch.ones(1, 1, 1, 1, dtype=torch.bool))


def test_target_mask_is_causal_and_key_not_pad() -> None:
    tgt = torch.tensor([[1, 5, 6, 0, 0], [1, 7, 8, 9, 4]])
    mask = target_mask(tgt, pad_id=0)
    assert mask.shape == (2, 1, 5, 5)
    assert mask.dtype == torch.bool
    for b in range(2):
        for q in range(5):
            for k in range(5):
                assert bool(mask[b, 0, q, k]) == (k <= q and int(tgt[b, k]) != 0), (b, q, k)


def test_target_mask_rows_never_fully_masked_when_bos_first() -> None:
    tgt = torch.tensor([[1, 0, 0, 0]])
    mask = target_mask(tgt, pad_id=0)
    assert bool(mask.any(dim=-1).all())  # every query sees at least BOS


def test_position_zero_is_never_padding_even_when_the_start_token_is_pad() -> None:
    """Marian starts decoding from <pad>: the first position must stay visible, the real padding hidden."""
    tgt = torch.tensor([[0, 5, 6, 0], [0, 7, 0, 0]])  # <pad> as the start token, then words, then padding
    mask = target_mask(tgt, pad_id=0)[:, 0]  # (B, T, T)
    assert mask[:, :, 0].all()
    assert mask[0, 3].tolist() == [True, True, True, False] and mask[1, 3].tolist() == [True, True, False, False]
