"""Shared fixtures: a tiny config and model, fixed seeds, CPU only.

Hypothesis tests cannot take function-scoped fixtures, so they build their models themselves; the
helpers here are plain fixtures for the example-based tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest
import torch
from hypothesis import settings

from transformer import Transformer, TransformerConfig

# CTranslate2 picks its int8 matrix product once, when it is imported, by CPU vendor: on AMD it takes oneDNN's
# u8s8 kernel, which on CPUs without AVX512-VNNI sums pairs of products in 16 bits and saturates (log-probs of
# a random model ~1 nat off its float32 ones, measured on an AVX2 EPYC); Intel MKL's, its choice on Intel,
# is exact. The export tests check our weights and scales, not that kernel: MKL on every CPU.
os.environ.setdefault("CT2_USE_MKL", "1")

# Property tests are deterministic (derandomize) and have no per-example deadline: the machine is shared.
settings.register_profile("repo", deadline=None, derandomize=True, print_blob=True)
settings.load_profile("repo")

TINY = dict(
    src_vocab_size=13,
    tgt_vocab_size=13,
    d_model=16,
    n_heads=2,
    d_ff=32,
    n_encoder_layers=2,
    n_decoder_layers=2,
    dropout=0.0,
)


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Every test starts from the same random state, on one intra-op thread (restored afterwards).

    The test models are tiny: one thread is as fast, and on a shared machine processes that each spin two
    OpenMP threads slow one another down 10-100x (measured here). TRANSFORMER_TEST_THREADS overrides.
    """
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("TRANSFORMER_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_cfg() -> Callable[..., TransformerConfig]:
    """``make_cfg(**changes)``: the tests' small config (``TINY``: d_model 16, 2 heads, 2+2 layers, vocabulary 13,
    pad 0, bos 1, eos 2, no dropout) with the fields a test needs changed."""
    return lambda **changes: TransformerConfig(**{**TINY, **changes})


@pytest.fixture
def tiny_cfg(make_cfg: Callable[..., TransformerConfig]) -> TransformerConfig:
    """d_model 16, 2 heads, 2+2 layers, vocabulary 13 (pad 0, bos 1, eos 2), no dropout."""
    return make_cfg()


@pytest.fixture
def tiny_model(tiny_cfg: TransformerConfig) -> Transformer:
    """A randomly initialised tiny model in eval mode."""
    return Transformer(tiny_cfg).eval()


@pytest.fixture
def make_tokens() -> Callable[[Sequence[int], int], torch.Tensor]:
    """``make_tokens(lengths, vocab)``: right-padded (B, max(lengths)) int64 of ordinary tokens (ids >= 3)."""

    def make(lengths: Sequence[int], vocab: int, start_with_bos: bool = False) -> torch.Tensor:
        out = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
        for row, n in enumerate(lengths):
            out[row, :n] = torch.randint(3, vocab, (n,))
            if start_with_bos:
                out[row, 0] = 1
        return out

    return make
