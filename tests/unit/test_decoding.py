"""Greedy and beam search against a stub model with a hand-written probability table (the fairseq /
OpenNMT pattern): the expected outputs and scores are computed by hand, or by exhaustive enumeration.

The stub keeps its prefix in a real ``DecoderState`` (token ids stored in ``self_k``, read back through the
state's lineage), so that beam search's reorders move it exactly as they move a model's key/value cache.

Shapes: B batch, S source length, R rows (B * beams), V vocabulary, C capacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from torch import Tensor

from transformer.cache import DecoderState
from transformer.decoding import DecodeOptions, beam_search, gnmt_length_penalty, greedy_search

PAD, BOS, EOS = 0, 1, 2
A, B, C, D = 3, 4, 5, 6
VOCAB = 7

Table = Callable[[int, tuple[int, ...]], dict[int, float]]  # (first source token, prefix) -> {token: p}


class StubModel:
    """Implements the decoding protocol; P(next | source, prefix) comes from ``table``.

    Tokens missing from the table's answer get probability 0 (logit -inf).
    """

    def __init__(self, table: Table) -> None:
        self.cfg = SimpleNamespace(pad_id=PAD, bos_id=BOS, eos_id=EOS)
        self.table = table
        self.calls = 0

    def source_mask(self, src: Tensor) -> Tensor:
        return (src != PAD)[:, None, None, :]  # (B, 1, 1, S)

    def encode(self, src: Tensor) -> Tensor:
        return src.float()[:, :, None]  # (B, S, 1): the stub's "memory" is the source itself

    def start_state(self, memory: Tensor, src_mask: Tensor, capacity: int = 64) -> DecoderState:
        b, s, _ = memory.shape
        history = torch.zeros(1, b, 1, max(capacity, 1), 1, 1)  # (L=1, B, H=1, C, g=1, Dh=1): tokens so far
        return DecoderState(
            self_k=history,
            self_v=history.clone(),
            cross_k=memory.reshape(1, b, 1, s, 1),
            cross_v=memory.reshape(1, b, 1, s, 1).clone(),
            src_mask=src_mask,
            step=0,
        )

    def decode_step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        self.calls += 1
        state = state.ensure_capacity(state.step + 1)
        state.self_k[0, :, 0, state.step, :, 0] = tokens.view(-1, state.rows_per_source).float()  # (B, g)
        history = state.row_caches()[0][0, :, 0, : state.step + 1, 0]  # (R, step+1): each row's tokens, by lineage
        logits = torch.full((tokens.size(0), VOCAB), -math.inf)
        for row in range(tokens.size(0)):
            first_source_token = int(state.cross_k[0, row // state.rows_per_source, 0, 0, 0])  # beams share it
            prefix = tuple(int(t) for t in history[row, 1:])  # without BOS
            for token, p in self.table(first_source_token, prefix).items():
                if p > 0:
                    logits[row, token] = math.log(p)
        return logits, state.advance()


def table_from(rows: dict[tuple[int, ...], dict[int, float]], default: dict[int, float]) -> Table:
    return lambda _src, prefix: rows.get(prefix, default)


def logp(*probs: float) -> float:
    return sum(math.log(p) for p in probs)


def lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


SRC = torch.tensor([[A, B, C]])

# Greedy takes A (0.6) and then must end with P(EOS | A) = 0.4: 0.24 in all. Beam 2 also keeps B (0.4),
# whose P(EOS | B) = 0.9 gives 0.36, the better translation.
GARDEN_PATH = table_from(
    {(): {A: 0.6, B: 0.4}, (A,): {EOS: 0.4, C: 0.3, D: 0.3}, (B,): {EOS: 0.9, C: 0.05, D: 0.05}},
    default={EOS: 1.0},
)


def test_length_penalty_arithmetic() -> None:
    assert gnmt_length_penalty(1, 0.6) == 1.0
    assert gnmt_length_penalty(10, 0.6) == pytest.approx((15 / 6) ** 0.6)
    assert gnmt_length_penalty(7, 0.0) == 1.0
    assert gnmt_length_penalty(4, 1.0) == pytest.approx(1.5)


def test_greedy_follows_the_most_probable_token() -> None:
    gen = greedy_search(StubModel(GARDEN_PATH), SRC)
    assert gen.tokens.tolist() == [[[A]]]
    assert gen.lengths.tolist() == [[1]]
    assert gen.scores[0, 0].item() == pytest.approx(logp(0.6, 0.4), rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_two_finds_a_better_translation_than_greedy(alpha: float) -> None:
    gen = beam_search(StubModel(GARDEN_PATH), SRC, DecodeOptions(beam_size=2, n_best=2, length_penalty=alpha))
    assert gen.tokens.tolist() == [[[B], [A]]]
    assert gen.lengths.tolist() == [[1, 1]]
    expected = [logp(0.4, 0.9) / lp(2, alpha), logp(0.6, 0.4) / lp(2, alpha)]  # |Y| = 2 counts the EOS
    assert gen.scores[0].tolist() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n_best", [1, 2])
def test_length_penalty_can_prefer_the_longer_hypothesis(n_best: int) -> None:
    """[EOS] has P 0.55 and |Y| = 1; [A, A, EOS] has P 0.45 and |Y| = 3: alpha decides.

    With n_best 1 the most probable candidate of the first step is [EOS]: a search that stops when its best
    candidate ends returns it, though alpha 2 ranks the longer hypothesis first.
    """
    table = table_from({(): {EOS: 0.55, A: 0.45}, (A,): {A: 1.0}, (A, A): {EOS: 1.0}}, default={EOS: 1.0})
    short, long = (logp(0.55), 1), (logp(0.45), 3)
    for alpha, winner in ((0.0, []), (2.0, [A, A])):
        gen = beam_search(StubModel(table), SRC, DecodeOptions(beam_size=2, n_best=n_best, length_penalty=alpha))
        scores = sorted([short[0] / lp(short[1], alpha), long[0] / lp(long[1], alpha)], reverse=True)
        assert gen.tokens[0, 0, : len(winner)].tolist() == winner and int(gen.lengths[0, 0]) == len(winner)
        assert gen.scores[0].tolist() == pytest.approx(scores[:n_best], rel=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 2.0])  # 0: the short one wins; 0.5 and 2: the long one
def test_power_length_normalization_divides_by_length_to_the_alpha(alpha: float) -> None:
    """Hugging Face's normalisation, score / |Y|^alpha: [EOS] (P 0.55, |Y| 1) against [A, A, EOS] (P 0.45, |Y| 3)."""
    table = table_from({(): {EOS: 0.55, A: 0.45}, (A,): {A: 1.0}, (A, A): {EOS: 1.0}}, default={EOS: 1.0})
    options = DecodeOptions(beam_size=2, n_best=2, length_penalty=alpha, length_normalization="power")
    gen = beam_search(StubModel(table), SRC, options)
    scored = sorted([(logp(0.55) / 1**alpha, []), (logp(0.45) / 3**alpha, [A, A])], reverse=True)
    assert gen.scores[0].tolist() == pytest.approx([s for s, _ in scored], rel=1e-6)
    assert gen.tokens[0, 0, : int(gen.lengths[0, 0])].tolist() == scored[0][1]
    assert scored[0][1] == ([] if alpha == 0.0 else [A, A])


def every_hypothesis(table: Table, max_len: int, tokens: tuple[int, ...]) -> list[tuple[tuple[int, ...], float, int]]:
    """All outputs (without EOS), their log P and |Y| (EOS counted; a cut output counts its tokens)."""
    done = []
    live = [((), 0.0)]
    for step in range(max_len):
        grown = []
        for prefix, score in live:
            probs = table(A, prefix)
            for token in tokens:
                if probs.get(token, 0.0) == 0.0:
                    continue
                s = score + math.log(probs[token])
                if token == EOS:
                    done.append((prefix, s, step + 1))
                elif step + 1 == max_len:
                    done.append((prefix + (token,), s, max_len))
                else:
                    grown.append((prefix + (token,), s))
        live = grown
    return done


def prefix_dependent_table(_src: int, prefix: tuple[int, ...]) -> dict[int, float]:
    """A distribution over {EOS, A, B} that depends on the whole prefix, all probabilities distinct."""
    h = sum((i + 2) * t for i, t in enumerate(prefix)) + 3 * len(prefix)
    raw = {EOS: 1.0 + (h * 7) % 5, A: 1.5 + (h * 3) % 4, B: 0.7 + (h * 5) % 6}
    total = sum(raw.values())
    return {t: w / total for t, w in raw.items()}


@pytest.mark.parametrize("n_best", [1, 3, 15])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
def test_wide_beam_is_exhaustive_and_n_best_is_sorted(alpha: float, n_best: int) -> None:
    """With room for every hypothesis, beam search must return the n best of all 15, ranked by log P / lp
    exactly, however few are asked for (the search may stop early only when nothing live can still win)."""
    max_len = 3  # outputs: [], 2 of 1 token, 4 of 2 tokens, 8 of 3 tokens (cut by max_len) = 15
    brute = every_hypothesis(prefix_dependent_table, max_len, (EOS, A, B))
    assert len(brute) == 15
    ranked = sorted(((s / lp(n, alpha), list(y)) for y, s, n in brute), reverse=True)[:n_best]
    options = DecodeOptions(beam_size=15, n_best=n_best, max_len=max_len, length_penalty=alpha)
    gen = beam_search(StubModel(prefix_dependent_table), SRC, options)
    got = [gen.tokens[0, i, : int(gen.lengths[0, i])].tolist() for i in range(n_best)]
    assert got == [y for _, y in ranked]
    assert gen.scores[0].tolist() == pytest.approx([s for s, _ in ranked], rel=1e-5)


def test_n_best_is_the_top_of_the_beam() -> None:
    gen4 = beam_search(StubModel(prefix_dependent_table), SRC, DecodeOptions(beam_size=4, n_best=4, max_len=5))
    gen2 = beam_search(StubModel(prefix_dependent_table), SRC, DecodeOptions(beam_size=4, n_best=2, max_len=5))
    assert gen2.tokens.shape[:2] == (1, 2)
    assert torch.equal(gen2.scores, gen4.scores[:, :2])
    assert torch.equal(gen2.tokens, gen4.tokens[:, :2, : gen2.tokens.size(2)])
    assert bool((gen4.scores[0, :-1] >= gen4.scores[0, 1:]).all())


# EOS is the most likely first token; then A, then B; after [A, B] EOS again.
EAGER_EOS = table_from(
    {(): {EOS: 0.7, A: 0.2, B: 0.1}, (A,): {EOS: 0.6, B: 0.4}, (A, B): {EOS: 0.9, C: 0.1}},
    default={EOS: 0.5, C: 0.5},
)


def test_min_len_forbids_eos_before_it() -> None:
    plain = greedy_search(StubModel(EAGER_EOS), SRC)
    assert plain.tokens.size(2) == 0 and plain.lengths.tolist() == [[0]]  # EOS at once: an empty output
    gen = greedy_search(StubModel(EAGER_EOS), SRC, DecodeOptions(min_len=2))
    assert gen.tokens.tolist() == [[[A, B]]]
    # Scores are of the model's own probabilities: the forbidden EOS mass is not renormalised away.
    assert gen.scores[0, 0].item() == pytest.approx(logp(0.2, 0.4, 0.9), rel=1e-6)
    beam = beam_search(StubModel(EAGER_EOS), SRC, DecodeOptions(beam_size=2, min_len=2, length_penalty=0.0))
    assert beam.tokens[0, 0].tolist() == [A, B]
    assert beam.scores[0, 0].item() == pytest.approx(logp(0.2, 0.4, 0.9), rel=1e-6)


NEVER_ENDS = table_from({}, default={A: 0.5, B: 0.3, C: 0.2})


def test_max_len_cuts_the_output() -> None:
    gen = greedy_search(StubModel(NEVER_ENDS), SRC, DecodeOptions(max_len=4))
    assert gen.tokens.tolist() == [[[A, A, A, A]]]
    beam = beam_search(StubModel(NEVER_ENDS), SRC, DecodeOptions(beam_size=3, n_best=3, max_len=4, length_penalty=0.6))
    assert beam.tokens[0, 0].tolist() == [A, A, A, A]
    assert beam.lengths.tolist() == [[4, 4, 4]]
    assert beam.scores[0, 0].item() == pytest.approx(logp(0.5, 0.5, 0.5, 0.5) / lp(4, 0.6), rel=1e-6)
    assert beam.tokens[0, 1].tolist() in ([A, A, A, B], [A, A, B, A], [A, B, A, A], [B, A, A, A])


def test_default_max_len_is_source_length_plus_50() -> None:
    src = torch.tensor([[A, B, C, PAD, PAD], [A, B, C, D, A]])  # 3 and 5 real tokens
    model = StubModel(NEVER_ENDS)
    gen = greedy_search(model, src)
    assert gen.lengths.tolist() == [[53], [55]]
    assert model.calls == 55  # no step past the longest limit
    beam = beam_search(StubModel(NEVER_ENDS), src, DecodeOptions(beam_size=2))
    assert beam.lengths.tolist() == [[53], [55]]
    assert beam.tokens.shape == (2, 1, 55)


def source_dependent_table(first: int, prefix: tuple[int, ...]) -> dict[int, float]:
    """Different sentences want different outputs: the first source token shifts the distribution."""
    base = prefix_dependent_table(first, prefix + (first,))
    return base if len(prefix) < 4 else {EOS: 0.6, A: 0.4}


def test_batched_beam_equals_one_sentence_at_a_time() -> None:
    src = torch.tensor([[A, B, PAD, PAD], [B, C, D, A], [C, PAD, PAD, PAD]])
    options = DecodeOptions(beam_size=3, n_best=3, length_penalty=0.6)
    batched = beam_search(StubModel(source_dependent_table), src, options)
    for i in range(3):
        alone = beam_search(StubModel(source_dependent_table), src[i : i + 1], options)
        width = alone.tokens.size(2)
        assert torch.equal(batched.tokens[i, :, :width], alone.tokens[0])
        assert bool((batched.tokens[i, :, width:] == PAD).all())
        torch.testing.assert_close(batched.scores[i], alone.scores[0], atol=0, rtol=0)


def test_beam_one_equals_greedy_on_the_stub() -> None:
    for table in (GARDEN_PATH, EAGER_EOS, prefix_dependent_table):
        greedy = greedy_search(StubModel(table), SRC, DecodeOptions(max_len=6))
        beam = beam_search(StubModel(table), SRC, DecodeOptions(beam_size=1, max_len=6, length_penalty=0.0))
        assert torch.equal(beam.tokens, greedy.tokens)
        torch.testing.assert_close(beam.scores, greedy.scores)


@pytest.mark.parametrize(("beam_size", "n_best"), [(0, 1), (2, 3), (2, 0)])
def test_invalid_beam_arguments(beam_size: int, n_best: int) -> None:
    with pytest.raises(ValueError, match="beam_size" if beam_size < 1 else "n_best"):
        beam_search(StubModel(GARDEN_PATH), SRC, DecodeOptions(beam_size=beam_size, n_best=n_best))


def test_negative_length_penalty_is_refused() -> None:
    """The search stops on a bound that needs lp to grow with length (alpha >= 0); the service also refuses it."""
    with pytest.raises(ValueError, match="length_penalty=-0.5 must be >= 0"):
        beam_search(StubModel(GARDEN_PATH), SRC, DecodeOptions(beam_size=2, length_penalty=-0.5))


def test_special_tokens_are_never_generated() -> None:
    """PAD and BOS are the most probable tokens, but banned: greedy takes A (0.2) over EOS (0.1) each step.

    Beam (alpha 0) ranks [] = [EOS] (0.1) over [A] = [A, EOS] (0.2 * 0.1); neither contains PAD or BOS.
    """
    table = table_from({}, default={PAD: 0.4, BOS: 0.3, A: 0.2, EOS: 0.1})
    greedy = greedy_search(StubModel(table), SRC, DecodeOptions(max_len=3))
    assert greedy.tokens.tolist() == [[[A, A, A]]]
    assert greedy.scores[0, 0].item() == pytest.approx(logp(0.2, 0.2, 0.2), rel=1e-6)
    beam = beam_search(StubModel(table), SRC, DecodeOptions(beam_size=2, n_best=2, max_len=3, length_penalty=0.0))
    assert beam.lengths.tolist() == [[0, 1]]
    assert beam.tokens[0, 1, :1].tolist() == [A]
    assert beam.scores[0].tolist() == pytest.approx([logp(0.1), logp(0.2, 0.1)], rel=1e-6)


# A confident model whose unlikely EOS lands among the first K candidates at every step: a search that
# stops once it holds K finished hypotheses returns one of those instead of the best path (found on
# the demo model, where beam 4 scored 80% exact match and greedy 97%).
CONFIDENT = table_from(
    {
        (): {A: 0.97, EOS: 0.01, C: 0.01, D: 0.01},
        (A,): {B: 0.97, EOS: 0.01, C: 0.01, D: 0.01},
        (A, B): {C: 0.97, EOS: 0.01, A: 0.01, D: 0.01},
        (A, B, C): {D: 0.97, EOS: 0.01, A: 0.01, B: 0.01},
        (A, B, C, D): {EOS: 1.0},
    },
    default={EOS: 1.0},
)


@pytest.mark.parametrize("beam_size", [2, 4])
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_unlikely_early_eos_does_not_end_the_search(beam_size: int, alpha: float) -> None:
    gen = beam_search(StubModel(CONFIDENT), SRC, DecodeOptions(beam_size=beam_size, length_penalty=alpha))
    assert gen.tokens.tolist() == [[[A, B, C, D]]]
    assert gen.scores[0, 0].item() == pytest.approx(logp(0.97, 0.97, 0.97, 0.97, 1.0) / lp(5, alpha), rel=1e-5)
    greedy = greedy_search(StubModel(CONFIDENT), SRC)
    assert torch.equal(greedy.tokens, gen.tokens)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_sentences_that_end_leave_the_batch_without_changing_any_result(
    beam_size: int, make_cfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real model and sources of very different lengths, so different default limits (source length + 50):
    # sentences end at different steps (a random model rarely says EOS), and the batch shrinks (as soon as
    # one has ended) or never does; every output must be the same.
    import transformer.decoding.beam as beam_module
    import transformer.decoding.greedy as greedy_module
    from transformer import Transformer

    torch.manual_seed(0)
    model = Transformer(make_cfg(src_vocab_size=17, tgt_vocab_size=17, n_encoder_layers=1)).eval()
    lengths = [2, 9, 4, 1, 7, 3]
    src = torch.zeros(len(lengths), max(lengths) + 1, dtype=torch.long)
    for row, n in enumerate(lengths):
        src[row, :n] = torch.randint(3, 17, (n,))
        src[row, n] = 2
    runs = []
    for fraction in (0.0, 2.0):  # drop at once / never
        monkeypatch.setattr(beam_module, "DROP_FINISHED_FRACTION", fraction)
        monkeypatch.setattr(greedy_module, "DROP_FINISHED_FRACTION", fraction)
        if beam_size == 1:
            runs.append(greedy_search(model, src))
        else:
            runs.append(beam_search(model, src, DecodeOptions(beam_size=beam_size, n_best=2)))
    dropped, kept = runs
    assert len(set(dropped.lengths[:, 0].tolist())) > 1  # the sentences did end at different steps
    assert torch.equal(dropped.tokens, kept.tokens) and torch.equal(dropped.lengths, kept.lengths)
    torch.testing.assert_close(dropped.scores, kept.scores, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("vocab", [8000, 8003, 9000, 32000, 32003])
@pytest.mark.parametrize("k", [1, 8, 10])
def test_chunked_top_k_equals_topk(vocab: int, k: int) -> None:
    """The chunked selection finds the same k largest values and columns as topk, including a vocabulary that
    is no multiple of the chunk, rows with many -inf and the largest values crowded into one chunk."""
    from transformer.decoding.common import _top_k

    gen = torch.Generator().manual_seed(vocab + k)
    x = torch.randn(6, vocab, generator=gen)
    x[1, : vocab // 2] = -torch.inf
    x[2, 1000:1000 + 2 * k] += 50.0  # all winners in one or two chunks
    x[3, -3:] += 50.0  # winners in the padded last chunk
    values, idx = _top_k(x, k)
    expected_values, expected_idx = x.topk(k, dim=-1)
    assert torch.equal(values, expected_values)
    assert torch.equal(idx, expected_idx)


def test_top_next_tokens_are_log_softmax_without_forbidden_tokens() -> None:
    from transformer.decoding.common import top_next_tokens

    logits = torch.randn(5, 40_000, generator=torch.Generator().manual_seed(0))
    logits[:, 0] = logits[:, 1] = logits[:, 2] = 30.0  # pad, bos, eos the likeliest
    for step, min_len in ((0, 2), (3, 2)):
        scratch = logits.clone()  # float32 logits are overwritten
        values, tokens = top_next_tokens(scratch, 8, step, min_len, pad_id=0, bos_id=1, eos_id=2)
        logp = torch.log_softmax(logits, dim=-1)
        assert torch.equal(scratch[:, 3:], logp[:, 3:])  # with the log-probabilities
        logp[:, :2] = -torch.inf
        if step < min_len:
            logp[:, 2] = -torch.inf
        expected_values, expected_tokens = logp.topk(8, dim=-1)
        assert torch.equal(values, expected_values) and torch.equal(tokens, expected_tokens)
        assert bool((tokens[:, 0] == 2).all()) == (step >= min_len)
    half = logits[:2, :100].to(torch.bfloat16)
    before = half.clone()
    top_next_tokens(half, 4, 0, 0, pad_id=0, bos_id=1, eos_id=2)
    assert torch.equal(half, before)  # other dtypes are converted, not written
