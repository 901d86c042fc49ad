"""Properties that must hold for any input, checked with hypothesis on tiny random models (eval mode).

Models: d_model 32, 2 heads, 2+2 layers, vocabulary 20 (pad 0, bos 1, eos 2), fixed seeds. Hypothesis
runs derandomized (see conftest), so a failure reproduces.

Shapes: B batch, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

import functools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer import Transformer, TransformerConfig
from transformer.decoding import DecodeOptions, beam_search, greedy_search

PAD, BOS, EOS = 0, 1, 2
VOCAB = 20

FEW = settings(max_examples=60, deadline=None)
SOME = settings(max_examples=100, deadline=None)


@functools.cache
def tiny_model(norm_first: bool = False, sharp: bool = False, seed: int = 0, dropout: float = 0.0) -> Transformer:
    """A random tiny model in eval mode.

    ``sharp``: untied output layer scaled x4, so that next-token distributions are peaked like a trained
    model's (logit std ~4 instead of ~1). Decoding tests compare argmax/top-k choices made in different
    batch shapes, whose logits differ by float rounding (~1e-6); with peaked distributions a near-tie
    that rounding could flip is vanishingly rare, so exact token equality is a fair demand.
    """
    cfg = TransformerConfig(
        src_vocab_size=VOCAB,
        tgt_vocab_size=VOCAB,
        d_model=32,
        n_heads=2,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=dropout,
        norm_first=norm_first,
        tie_output=not sharp,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Transformer(cfg)
    if sharp:
        with torch.no_grad():
            model.output_weight.mul_(4.0)
    return model.eval()


sentence = st.lists(st.integers(3, VOCAB - 1), min_size=1, max_size=8)
sentences = st.lists(sentence, min_size=1, max_size=4)
variant = st.sampled_from([False, True])  # norm_first


def pad_batch(rows: list[list[int]], width: int | None = None) -> torch.Tensor:
    """Right-pad token lists with PAD: -> (B, width or longest) int64."""
    width = width or max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (width - len(r)) for r in rows], dtype=torch.long)


def with_bos(rows: list[list[int]]) -> list[list[int]]:
    return [[BOS, *r] for r in rows]


@SOME
@given(src=sentences, tgt=sentence, data=st.data(), norm_first=variant)
def test_causality(src: list[list[int]], tgt: list[int], data: st.DataObject, norm_first: bool) -> None:
    """Logits at positions <= t do not depend on target tokens after t (pad included)."""
    model = tiny_model(norm_first)
    tgt_in = torch.tensor([BOS, *tgt]).expand(len(src), -1)  # (B, T)
    t = data.draw(st.integers(0, tgt_in.size(1) - 1), label="t")
    later = tgt_in.size(1) - 1 - t
    changed = tgt_in.clone()
    changed[:, t + 1 :] = torch.tensor(data.draw(st.lists(st.integers(0, VOCAB - 1), min_size=later, max_size=later)))
    with torch.no_grad():
        a = model(pad_batch(src), tgt_in)
        b = model(pad_batch(src), changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], atol=1e-5, rtol=1e-5)


@SOME
@given(src=sentences, tgt=sentences, extra_src=st.integers(1, 5), extra_tgt=st.integers(0, 3), norm_first=variant)
def test_padding_invariance(
    src: list[list[int]], tgt: list[list[int]], extra_src: int, extra_tgt: int, norm_first: bool
) -> None:
    """More padding on the source (and target) changes no real position's output."""
    model = tiny_model(norm_first)
    b = min(len(src), len(tgt))
    src_rows, tgt_rows = src[:b], with_bos(tgt[:b])
    s, t = max(map(len, src_rows)), max(map(len, tgt_rows))
    with torch.no_grad():
        base = model(pad_batch(src_rows), pad_batch(tgt_rows))
        padded = model(pad_batch(src_rows, s + extra_src), pad_batch(tgt_rows, t + extra_tgt))
        memory = model.encode(pad_batch(src_rows))
        memory_padded = model.encode(pad_batch(src_rows, s + extra_src))
    torch.testing.assert_close(padded[:, :t], base, atol=1e-5, rtol=1e-5)
    real = pad_batch(src_rows) != PAD
    torch.testing.assert_close(memory_padded[:, :s][real], memory[real], atol=1e-5, rtol=1e-5)


@FEW
@given(batch=sentences, tgt=sentence, data=st.data(), norm_first=variant)
def test_batch_invariance(batch: list[list[int]], tgt: list[int], data: st.DataObject, norm_first: bool) -> None:
    """A sentence alone and inside a padded batch: the same logits, and exactly the same greedy/beam output."""
    assert_batch_invariant(tiny_model(norm_first, sharp=True), batch, tgt, data.draw(st.integers(0, len(batch) - 1),
                                                                                      label="i"))


def assert_batch_invariant(model: Transformer, batch: list[list[int]], tgt: list[int], i: int) -> None:
    """Sentence i of ``batch`` alone and in the padded batch: the same logits, the same greedy and beam-3 output."""
    src, alone = pad_batch(batch), pad_batch([batch[i]])
    tgt_in = torch.tensor([BOS, *tgt])
    with torch.no_grad():
        in_batch = model(src, tgt_in.expand(len(batch), -1))[i]
        by_itself = model(alone, tgt_in[None])[0]
    torch.testing.assert_close(in_batch, by_itself, atol=1e-5, rtol=1e-5)
    for beam in (1, 3):
        out_batch = model.generate(src, beam_size=beam, max_len=6)[i]
        out_alone = model.generate(alone, beam_size=beam, max_len=6)[0]
        n = out_alone.size(0)
        assert torch.equal(out_batch[:n], out_alone), beam
        assert bool((out_batch[n:] == PAD).all()), beam


@SOME
@given(
    src=sentences,
    tgt_len=st.integers(1, 9),
    seed=st.integers(0, 2**16),
    capacity=st.integers(1, 12),
    split=st.integers(0, 9),
    data=st.data(),
    norm_first=variant,
)
def test_cached_decoding_equals_full_forward(
    src: list[list[int]], tgt_len: int, seed: int, capacity: int, split: int, data: st.DataObject, norm_first: bool
) -> None:
    """decode_step logits equal forward's at every position, also after state.select (a beam reorder,
    with rows dropped and repeated), and whatever the starting capacity of the cache."""
    model = tiny_model(norm_first)
    b = len(src)
    src_t = pad_batch(src)
    gen = torch.Generator().manual_seed(seed)
    tgt_in = torch.randint(3, VOCAB, (b, tgt_len), generator=gen)
    tgt_in[:, 0] = BOS
    rows = st.one_of(st.permutations(range(b)), st.lists(st.integers(0, b - 1), min_size=1, max_size=6))
    order = torch.tensor(data.draw(rows, label="rows"), dtype=torch.long)  # a reorder, or rows dropped/repeated
    with torch.no_grad():
        full = model(src_t, tgt_in)  # (B, T, V)
        state = model.start_state(model.encode(src_t), model.source_mask(src_t), capacity=capacity)
        expected, tokens = full, tgt_in
        for t in range(tgt_len):
            if t == split:
                state = state.select(order)
                expected, tokens = full[order], tgt_in[order]
            logits, state = model.decode_step(tokens[:, t], state)
            assert logits.shape == (tokens.size(0), VOCAB)
            torch.testing.assert_close(logits, expected[:, t], atol=1e-5, rtol=1e-5)
    assert state.step == tgt_len


@SOME
@given(
    src=sentences,
    beams=st.integers(2, 4),
    tgt_len=st.integers(2, 8),
    seed=st.integers(0, 2**16),
    drop_at=st.integers(1, 8),
    data=st.data(),
    norm_first=variant,
)
def test_cached_beams_equal_full_forward_of_their_own_prefixes(
    src: list[list[int]], beams: int, tgt_len: int, seed: int, drop_at: int, data: st.DataObject, norm_first: bool
) -> None:
    """Beam search's cache (one row per sentence at step 0, then ``repeat_rows``; reorders that move only the
    lineage; sentences leaving by ``select_sources``): every step's logits equal forward's on each beam's own
    prefix."""
    model = tiny_model(norm_first)
    src_t = pad_batch(src)
    gen = torch.Generator().manual_seed(seed)
    sources = torch.arange(len(src))  # (A,) the batch row of each sentence still decoded
    prefixes = torch.full((len(src), 1), BOS)  # (rows, t + 1): what each row has read
    with torch.no_grad():
        state = model.start_state(model.encode(src_t), model.source_mask(src_t), capacity=1)
        for t in range(tgt_len):
            logits, state = model.decode_step(prefixes[:, -1], state)
            g = prefixes.size(0) // sources.numel()
            full = model(src_t[sources.repeat_interleave(g)], prefixes)[:, -1]  # (rows, V)
            torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-5)
            if t == 0:
                state, prefixes = state.repeat_rows(beams), prefixes.repeat_interleave(beams, dim=0)
            else:  # each beam continues one of its sentence's beams
                parents = torch.randint(0, beams, (sources.numel(), beams), generator=gen)
                rows = (torch.arange(sources.numel())[:, None] * beams + parents).view(-1)
                state, prefixes = state.reorder_within_sentences(rows), prefixes[rows]
            if t == drop_at and sources.numel() > 1:  # some sentences are done and leave
                keep = torch.tensor(sorted(data.draw(st.sets(st.integers(0, sources.numel() - 1), min_size=1))))
                state, sources = state.select_sources(keep), sources[keep]
                prefixes = prefixes.view(-1, beams, prefixes.size(1))[keep].view(-1, prefixes.size(1))
            prefixes = torch.cat([prefixes, torch.randint(3, VOCAB, (prefixes.size(0), 1), generator=gen)], dim=1)


@FEW
@given(src=sentences, min_len=st.integers(0, 3), norm_first=variant)
def test_beam_size_one_is_greedy(src: list[list[int]], min_len: int, norm_first: bool) -> None:
    assert_beam_one_is_greedy(tiny_model(norm_first, sharp=True), src, min_len)


def assert_beam_one_is_greedy(model: Transformer, src: list[list[int]], min_len: int) -> None:
    src_t = pad_batch(src)
    greedy = greedy_search(model, src_t, DecodeOptions(max_len=7, min_len=min_len))
    beam = beam_search(model, src_t, DecodeOptions(beam_size=1, max_len=7, min_len=min_len, length_penalty=0.0))
    assert torch.equal(beam.tokens, greedy.tokens)
    assert torch.equal(beam.lengths, greedy.lengths)
    torch.testing.assert_close(beam.scores, greedy.scores, atol=1e-4, rtol=1e-5)


@FEW
@given(src=sentences, tgt=sentence)
def test_attention_maps_are_distributions_over_allowed_keys(src: list[list[int]], tgt: list[int]) -> None:
    model = tiny_model()
    src_t = pad_batch(src)
    tgt_in = torch.tensor([BOS, *tgt]).expand(len(src), -1)
    with torch.no_grad():
        _, maps = model.forward_with_attention(src_t, tgt_in)
    blocked = (src_t == PAD)[:, None, None, :]  # (B, 1, 1, S)
    for w in (*maps.encoder, *maps.cross, *maps.decoder_self):
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5, rtol=0)
    for w in (*maps.encoder, *maps.cross):
        assert bool((w.masked_select(blocked) == 0).all())
    for w in maps.decoder_self:
        assert bool((w.triu(diagonal=1) == 0).all())


@FEW
@given(src=sentences, tgt=sentence)
def test_eval_mode_is_deterministic(src: list[list[int]], tgt: list[int]) -> None:
    """With dropout 0.3 configured, eval mode must still give identical outputs run after run."""
    model = tiny_model(dropout=0.3)
    src_t = pad_batch(src)
    tgt_in = torch.tensor([BOS, *tgt]).expand(len(src), -1)
    with torch.no_grad():
        assert torch.equal(model(src_t, tgt_in), model(src_t, tgt_in))
    assert torch.equal(model.generate(src_t, beam_size=2, max_len=4), model.generate(src_t, beam_size=2, max_len=4))
