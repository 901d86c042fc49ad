"""The decoding invariants at the faster inference precisions (``Transformer.set_inference_precision``): int8 and
bfloat16 change the numbers, but not which rows a number depends on. A sentence decodes the same alone and in a
padded batch, the cache gives forward's logits, and beam size 1 is greedy decoding, as in float32
(``test_invariants``).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_invariants import (
    BOS,
    VOCAB,
    assert_batch_invariant,
    assert_beam_one_is_greedy,
    pad_batch,
    sentence,
    sentences,
    tiny_model,
)

from transformer import Transformer
from transformer.ops.linear import bf16_supported, int8_supported

FEW = settings(max_examples=30, deadline=None)
PRECISIONS = [
    pytest.param("int8", marks=pytest.mark.skipif(not int8_supported(), reason="int8 does not run here")),
    pytest.param("bfloat16", marks=pytest.mark.skipif(not bf16_supported(), reason="this CPU has no AMX/AVX512-BF16")),
]


@functools.cache
def model_at(precision: str, sharp: bool) -> Transformer:
    return copy.deepcopy(tiny_model(sharp=sharp)).set_inference_precision(precision)


@pytest.mark.parametrize("precision", PRECISIONS)
@FEW
@given(batch=sentences, tgt=sentence, data=st.data())
def test_batch_invariance(precision: str, batch: list[list[int]], tgt: list[int], data: st.DataObject) -> None:
    """A sentence alone and inside a padded batch: the same logits, and exactly the same greedy/beam output."""
    assert_batch_invariant(model_at(precision, sharp=True), batch, tgt, data.draw(st.integers(0, len(batch) - 1),
                                                                                  label="i"))


@pytest.mark.parametrize("precision", PRECISIONS)
@FEW
@given(src=sentences, tgt_len=st.integers(1, 9), seed=st.integers(0, 2**16), data=st.data())
def test_cached_decoding_equals_full_forward(
    precision: str, src: list[list[int]], tgt_len: int, seed: int, data: st.DataObject
) -> None:
    """decode_step logits equal forward's at every position, also after a beam reorder (rows dropped/repeated),
    to one rounding step of the precision: the two paths' float32 inputs to a product differ by ~1e-7 (another
    summation order), which now and then moves an input across an int8 or bfloat16 rounding boundary (a step of
    ~1% of the row's largest value), so the logits can differ by ~0.02, where float32 agrees to 1e-5."""
    model = model_at(precision, sharp=False)
    b = len(src)
    src_t = pad_batch(src)
    tgt_in = torch.randint(3, VOCAB, (b, tgt_len), generator=torch.Generator().manual_seed(seed))
    tgt_in[:, 0] = BOS
    order = torch.tensor(data.draw(st.lists(st.integers(0, b - 1), min_size=1, max_size=6), label="rows"))
    split = data.draw(st.integers(0, tgt_len), label="split")
    with torch.no_grad():
        full = model(src_t, tgt_in)  # (B, T, V)
        state = model.start_state(model.encode(src_t), model.source_mask(src_t), capacity=2)
        expected, tokens = full, tgt_in
        for t in range(tgt_len):
            if t == split:
                state, expected, tokens = state.select(order), full[order], tgt_in[order]
            logits, state = model.decode_step(tokens[:, t], state)
            torch.testing.assert_close(logits, expected[:, t], atol=0.1, rtol=0.0)
            assert (logits - expected[:, t]).abs().mean() < 0.01


@pytest.mark.parametrize("precision", PRECISIONS)
@FEW
@given(src=sentences, min_len=st.integers(0, 3))
def test_beam_size_one_is_greedy(precision: str, src: list[list[int]], min_len: int) -> None:
    assert_beam_one_is_greedy(model_at(precision, sharp=True), src, min_len)
