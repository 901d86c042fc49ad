"""The Transformer's public functions: documented shapes and dtypes, weight sharing, parameter count,
attention maps, and bad input.

Shapes: B batch, S source length, T target length, D d_model, V target vocabulary, N n-best, L output length.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from transformer import DecodeOptions, Generation, Transformer, TransformerConfig, search
from transformer.ops.linear import int8_supported

PAD, BOS, EOS = 0, 1, 2


def unique_parameter_count(model: torch.nn.Module) -> int:
    """Parameters counted once even when shared (model.parameters() already deduplicates; check by id)."""
    seen: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        seen[id(p)] = p.numel()
    return sum(seen.values())


def test_base_parameter_count_matches_the_formula_and_the_paper() -> None:
    v, d, f, n = 37000, 512, 2048, 6
    cfg = TransformerConfig.preset(
        "base", src_vocab_size=v, tgt_vocab_size=v, share_embeddings=True, tie_output=True
    )
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = Transformer(cfg)
    attention = 4 * d * d + 4 * d  # W_Q, W_K, W_V, W_O and their biases
    ffn = 2 * d * f + f + d  # W_1, b_1, W_2, b_2
    norm = 2 * d  # gain and bias
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    expected = v * d + n * encoder_layer + n * decoder_layer  # one embedding table, shared three ways
    assert unique_parameter_count(model) == expected == 63_082_496
    assert sum(p.numel() for p in model.parameters()) == expected
    # The paper (Table 3) says 65M for base. Its count is rounded, and it does not state its exact
    # vocabulary size (37000 "about" BPE tokens) or which biases it has, so we ask for 5% only.
    assert abs(expected - 65e6) / 65e6 < 0.05


def test_untied_model_counts_each_table(make_cfg) -> None:
    cfg = make_cfg(src_vocab_size=11, d_model=8, d_ff=16, n_encoder_layers=1, n_decoder_layers=1, tie_output=False,
                   norm_first=True)
    model = Transformer(cfg)
    d, f = 8, 16
    attention, ffn, norm = 4 * d * d + 4 * d, 2 * d * f + f + d, 2 * d
    expected = 11 * d + 13 * d + 13 * d + (attention + ffn + 2 * norm) + (2 * attention + ffn + 3 * norm) + 2 * norm
    assert unique_parameter_count(model) == expected  # the last 2 * norm: pre-norm's two final LayerNorms


def test_weight_sharing_and_tying_are_the_same_tensor(make_cfg) -> None:
    model = Transformer(make_cfg(share_embeddings=True, tie_output=True))
    assert model.src_embed.weight is model.tgt_embed.weight is model.output_weight
    untied = Transformer(make_cfg(share_embeddings=False, tie_output=False))
    assert untied.src_embed.weight is not untied.tgt_embed.weight
    assert untied.output_weight is not untied.tgt_embed.weight


def test_shapes_and_dtypes_of_the_public_functions(
    tiny_model: Transformer, make_tokens: Callable[..., torch.Tensor]
) -> None:
    src = make_tokens([5, 3, 4], 13)  # (3, 5) with padding
    tgt_in = make_tokens([4, 6, 2], 13, start_with_bos=True)  # (3, 6)
    d, v = tiny_model.cfg.d_model, tiny_model.cfg.tgt_vocab_size
    with torch.no_grad():
        memory = tiny_model.encode(src)
        src_mask = tiny_model.source_mask(src)
        hidden = tiny_model.decode(tgt_in, memory, src_mask)
        logits = tiny_model.project(hidden)
        forward = tiny_model(src, tgt_in)
    assert memory.shape == (3, 5, d) and memory.dtype == torch.float32
    assert src_mask.shape == (3, 1, 1, 5) and src_mask.dtype == torch.bool
    assert hidden.shape == (3, 6, d) and hidden.dtype == torch.float32
    assert logits.shape == (3, 6, v) and forward.shape == (3, 6, v)
    torch.testing.assert_close(forward, logits, atol=0, rtol=0)


def test_project_is_the_tied_embedding_transposed(tiny_model: Transformer) -> None:
    hidden = torch.randn(2, 3, tiny_model.cfg.d_model)
    torch.testing.assert_close(tiny_model.project(hidden), hidden @ tiny_model.tgt_embed.weight.t())


def test_forward_with_attention_equals_forward_and_maps_are_well_formed(
    tiny_model: Transformer, make_tokens: Callable[..., torch.Tensor]
) -> None:
    src = make_tokens([6, 4], 13)
    tgt_in = make_tokens([5, 3], 13, start_with_bos=True)
    with torch.no_grad():
        logits, maps = tiny_model.forward_with_attention(src, tgt_in)
        expected = tiny_model(src, tgt_in)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    n, h = 2, tiny_model.cfg.n_heads
    assert len(maps.encoder) == len(maps.decoder_self) == len(maps.cross) == n
    for enc, dec, cross in zip(maps.encoder, maps.decoder_self, maps.cross):
        assert enc.shape == (2, h, 6, 6) and dec.shape == (2, h, 5, 5) and cross.shape == (2, h, 5, 6)
        for w in (enc, dec, cross):
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-5, rtol=0)
        src_pad = (src == PAD)[:, None, None, :]  # (B, 1, 1, S)
        assert bool((enc.masked_select(src_pad) == 0).all()) and bool((cross.masked_select(src_pad) == 0).all())
        assert bool((dec.triu(diagonal=1) == 0).all())  # causal
        tgt_pad = (tgt_in == PAD)[:, None, None, :]
        assert bool((dec.masked_select(tgt_pad) == 0).all())


def test_generate_returns_int64_without_bos_or_eos_padded_with_pad(
    tiny_model: Transformer, make_tokens: Callable[..., torch.Tensor]
) -> None:
    src = make_tokens([5, 2, 7], 13)
    for beam in (1, 3):
        out = tiny_model.generate(src, beam_size=beam, max_len=6)
        assert out.dtype == torch.int64
        assert out.dim() == 2 and out.size(0) == 3 and 1 <= out.size(1) <= 6
        assert not bool((out == BOS).any()) and not bool((out == EOS).any())
        is_pad = (out == PAD).long()
        assert bool((is_pad.cummax(dim=1).values == is_pad).all()), "pad only at the end of a row"


def test_search_n_best_returns_generation_with_consistent_shapes(
    tiny_model: Transformer, make_tokens: Callable[..., torch.Tensor]
) -> None:
    src = make_tokens([4, 6], 13)
    gen = search(tiny_model, src, DecodeOptions(beam_size=4, n_best=3, max_len=5))
    assert isinstance(gen, Generation)
    assert gen.tokens.dtype == torch.int64 and gen.lengths.dtype == torch.int64
    assert gen.tokens.dim() == 3 and gen.tokens.shape[:2] == (2, 3) and gen.tokens.size(2) <= 5
    assert gen.scores.shape == (2, 3) and gen.lengths.shape == (2, 3)
    assert torch.equal(gen.lengths, (gen.tokens != PAD).sum(-1))
    assert bool((gen.scores[:, :-1] >= gen.scores[:, 1:]).all()), "best first"
    assert bool(gen.scores.isfinite().all()) and bool((gen.scores <= 0).all())
    best = tiny_model.generate(src, DecodeOptions(beam_size=4, n_best=3, max_len=5))  # the same search's best
    assert torch.equal(best, gen.tokens[:, 0, : best.size(1)])
    assert torch.equal(tiny_model.generate(src, beam_size=4, max_len=5),  # names change the options' fields
                       tiny_model.generate(src, DecodeOptions(beam_size=4, max_len=5)))


def test_greedy_generation_scores_are_the_sum_of_log_probs(tiny_model: Transformer) -> None:
    """Score the greedy output again by teacher forcing: the same sum of log-probabilities."""
    src = torch.tensor([[3, 4, 5, 6, 7]])
    gen = search(tiny_model, src, DecodeOptions(beam_size=1, max_len=4))
    out = gen.tokens[0, 0, : int(gen.lengths[0, 0])]
    ended = int(gen.lengths[0, 0]) < 4
    target = torch.cat([out, torch.tensor([EOS])]) if ended else out
    tgt_in = torch.cat([torch.tensor([BOS]), target[:-1]])[None]
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(src, tgt_in), dim=-1)[0]
    expected = logp.gather(1, target[:, None]).sum().item()
    assert gen.scores[0, 0].item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.tensor([3, 4, 5]), "src"),  # 1-D
        (torch.ones(1, 2, 3, dtype=torch.long), "src"),  # 3-D
        (torch.tensor([[3.0, 4.0]]), "src"),  # float
        (torch.tensor([[True, False]]), "src"),  # bool
    ],
)
def test_bad_source_raises_value_error_naming_it(tiny_model: Transformer, bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_model.encode(bad)
    with pytest.raises(ValueError, match=message):
        tiny_model(bad, torch.tensor([[BOS, 3]]))
    with pytest.raises(ValueError, match=message):
        tiny_model.generate(bad, beam_size=2, max_len=3)


def test_bad_target_raises_value_error_naming_it(tiny_model: Transformer) -> None:
    src = torch.tensor([[3, 4]])
    with pytest.raises(ValueError, match="tgt_in"):
        tiny_model(src, torch.tensor([BOS, 3]))
    with pytest.raises(ValueError, match="tgt_in"):
        tiny_model(src, torch.tensor([[1.0, 3.0]]))


def test_bad_decoding_arguments_raise(tiny_model: Transformer) -> None:
    src = torch.tensor([[3, 4]])
    with pytest.raises(ValueError, match="n_best"):
        tiny_model.generate(src, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="max_len"):
        tiny_model.generate(src, beam_size=2, max_len=0)
    with pytest.raises(TypeError, match="beam"):
        tiny_model.generate(src, beam=2)  # not a DecodeOptions field


def test_dropout_is_active_in_training_and_off_in_eval(make_cfg, make_tokens: Callable[..., torch.Tensor]) -> None:
    model = Transformer(make_cfg(n_encoder_layers=1, n_decoder_layers=1, dropout=0.3))
    src, tgt_in = make_tokens([4], 13), make_tokens([3], 13, start_with_bos=True)
    model.train()
    assert not torch.allclose(model(src, tgt_in), model(src, tgt_in))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt_in), model(src, tgt_in), atol=0, rtol=0)


def test_recomputed_layers_give_the_same_gradients_and_keep_less(
    make_cfg, make_tokens: Callable[..., torch.Tensor]
) -> None:
    cfg = make_cfg(src_vocab_size=23, tgt_vocab_size=23, d_ff=64, dropout=0.3, attention_dropout=0.1)
    model = Transformer(cfg).train()
    src, tgt_in = make_tokens([7, 4, 6], 23), make_tokens([5, 6, 2], 23, start_with_bos=True)
    runs = []
    for recompute in (False, True):
        model.recompute_layers(recompute)
        model.zero_grad()
        kept: dict[int, int] = {}

        def pack(t: torch.Tensor, kept: dict[int, int] = kept) -> torch.Tensor:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        torch.manual_seed(3)  # the same dropout masks, which the recomputation must reproduce
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logits = model(src, tgt_in)
        logits.logsumexp(-1).sum().backward()
        runs.append((logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, sum(kept.values())))
    (plain, plain_grads, plain_kept), (again, grads, kept_bytes) = runs
    torch.testing.assert_close(again, plain, atol=0, rtol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], msg=name)
    assert kept_bytes < plain_kept / 2  # weights dominate at this size; activations go almost entirely
    model.eval()
    with torch.no_grad():  # no graph, nothing to recompute: the plain path
        flagged = model(src, tgt_in)
        model.recompute_layers(False)
        torch.testing.assert_close(flagged, model(src, tgt_in), atol=0, rtol=0)


def test_learned_positions_and_pre_norm_build_and_run(make_cfg, make_tokens: Callable[..., torch.Tensor]) -> None:
    cfg = make_cfg(n_encoder_layers=1, n_decoder_layers=1, positional="learned", norm_first=True, max_positions=8)
    model = Transformer(cfg).eval()
    assert model.encoder.final_norm is not None and model.decoder.final_norm is not None
    src, tgt_in = make_tokens([5], 13), make_tokens([4], 13, start_with_bos=True)
    assert model(src, tgt_in).shape == (1, 4, 13)
    with pytest.raises(ValueError, match="max_positions"):
        model.encode(make_tokens([9], 13))


@pytest.fixture
def two_sentences(make_cfg) -> tuple[Transformer, torch.Tensor]:
    """A seeded 1+2-layer model (vocabulary 13) in eval mode and a 2-sentence source batch."""
    torch.manual_seed(0)
    return Transformer(make_cfg(n_encoder_layers=1)).eval(), torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])


def test_reorder_within_sentences_equals_select_for_beam_moves(two_sentences) -> None:
    """Beam search moves rows only among one sentence's beams; the cheaper reorder must then equal select."""
    model, src = two_sentences
    beams = 3
    with torch.no_grad():
        start = model.start_state(model.encode(src), model.source_mask(src), capacity=4)
        shared, copied = start.repeat_rows(beams), start.select(torch.arange(2).repeat_interleave(beams))
        tokens = torch.randint(3, 13, (2 * beams,))
        (_, shared), (_, copied) = model.decode_step(tokens, shared), model.decode_step(tokens, copied)
    rows = torch.tensor([2, 2, 0, 4, 3, 3])  # within sentence 0 (rows 0-2) and sentence 1 (rows 3-5)
    fast, full = shared.reorder_within_sentences(rows), copied.select(rows)
    filled = slice(0, shared.step)  # positions past the step are unwritten memory (torch.empty)
    for ours, theirs in zip(fast.row_caches(), full.row_caches()):
        torch.testing.assert_close(ours[:, :, :, filled], theirs[:, :, :, filled], atol=1e-6, rtol=1e-5)
    assert torch.equal(fast.src_mask, start.src_mask) and fast.cross_k is start.cross_k  # one row per sentence


def test_reorders_move_the_lineage_and_copy_no_key(two_sentences) -> None:
    """A reorder rewrites which slot holds each beam's key; the buffers and every written key stay put."""
    model, src = two_sentences
    with torch.no_grad():
        state = model.start_state(model.encode(src), model.source_mask(src), capacity=6).repeat_rows(2)
        pointer = state.self_k.data_ptr()
        rows = torch.tensor([1, 1, 2, 3])
        for _ in range(4):
            _, state = model.decode_step(torch.randint(3, 13, (4,)), state)
            expected = [x[:, :, :, : state.step].index_select(1, rows) for x in state.row_caches()]
            written = state.self_k[:, :, :, : state.step].clone()
            state = state.reorder_within_sentences(rows)
            assert all(torch.equal(x[:, :, :, : state.step], e) for x, e in zip(state.row_caches(), expected))
            assert torch.equal(state.self_k[:, :, :, : state.step], written)
            assert state.self_k.data_ptr() == pointer
    assert state.lineage[0, :, : state.step].tolist() == [[1] * 4, [1] * 4]  # sentence 0: beam 1's line, twice


def test_shared_cross_attention_keys_equal_copied_ones(make_cfg) -> None:
    """repeat_rows keeps one copy of a sentence's cross-attention keys for its K beams, which attend as K
    queries; every step's logits must equal those of a state with the keys copied per beam, also after
    beam reorders and after select (which turns the shared state back into one source row per row)."""
    torch.manual_seed(1)
    model = Transformer(make_cfg(n_encoder_layers=1)).eval()
    src = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0], [4, 2, 0, 0]])
    b, beams = 3, 4
    with torch.no_grad():
        start = model.start_state(model.encode(src), model.source_mask(src), capacity=2)
        shared = start.repeat_rows(beams)
        copied = start.select(torch.arange(b).repeat_interleave(beams))
        assert shared.rows_per_source == beams and copied.rows_per_source == 1
        assert shared.cross_k.size(1) == b and copied.cross_k.size(1) == b * beams
        for _ in range(5):  # grows the capacity 2 -> 4 -> 8 on the way
            tokens = torch.randint(3, 13, (b * beams,))
            a, shared = model.decode_step(tokens, shared)
            c, copied = model.decode_step(tokens, copied)
            torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-5)
            within = (torch.arange(b)[:, None] * beams + torch.randint(0, beams, (b, beams))).view(-1)
            shared, copied = shared.reorder_within_sentences(within), copied.reorder_within_sentences(within)
        rows = torch.tensor([11, 0, 5, 5])  # sentences 2, 0, 1, 1
        picked, reference = shared.select(rows), copied.select(rows)
        assert picked.rows_per_source == 1 and torch.equal(picked.src_mask, reference.src_mask)
        tokens = torch.randint(3, 13, (4,))
        torch.testing.assert_close(model.decode_step(tokens, picked)[0], model.decode_step(tokens, reference)[0],
                                   atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not int8_supported(), reason="int8 inference does not run here (int8_supported)")
def test_int8_inference_reaches_every_linear_layer_and_switches_back(make_cfg) -> None:
    torch.manual_seed(0)
    model = Transformer(make_cfg(src_vocab_size=50, tgt_vocab_size=50, d_model=32, n_heads=4, d_ff=64)).eval()
    src = torch.randint(3, 50, (3, 9))
    src[:, -1] = EOS
    tgt = torch.randint(3, 50, (3, 6))
    with torch.no_grad():
        exact = model(src, tgt)
        assert not model.int8_inference
        assert model.set_int8_inference() is model and model.int8_inference
        int8 = model(src, tgt)
        linears = [m for m in model.modules() if hasattr(m, "packed")]
        assert len(linears) == 2 * 4 + 2 * 6 and all(m.packed.int8 and m.packed._entries for m in linears)
        assert model.output_packed._entries  # the output projection too
        assert not torch.equal(int8, exact)
        assert (int8 - exact).abs().max() < 0.05 * exact.abs().max()
        assert model.generate(src, beam_size=2, max_len=5).shape[0] == 3
        model.set_int8_inference(False)
        torch.testing.assert_close(model(src, tgt), exact, atol=1e-5, rtol=1e-5)
    model.train()
    loss = model(src, tgt).logsumexp(-1).mean()  # training is float32 whatever the inference setting
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_logits_bias_and_a_start_token_that_is_padding(make_cfg, make_tokens) -> None:
    """Marian's two choices: ``output_bias`` adds a saved, untrained bias to the logits; ``bos_id == pad_id``
    decodes from <pad>, which the masks do not hide and which is never generated."""
    model = Transformer(make_cfg(output_bias=True, bos_id=0, pad_id=0, eos_id=2, scale_embeddings=False)).eval()
    assert "output_bias" in model.state_dict() and "output_bias" not in dict(model.named_parameters())
    src = make_tokens([5, 3], 13)
    tgt_in = torch.tensor([[0, 5, 6], [0, 7, 0]])  # from <pad>
    with torch.no_grad():
        before = model(src, tgt_in)
        model.output_bias.copy_(torch.arange(13.0))
        after = model(src, tgt_in)
        torch.testing.assert_close(after - before, torch.arange(13.0).expand_as(after), atol=1e-5, rtol=0)
        model.output_bias[0] = 100.0  # <pad> the most likely token by far: still never generated
        gen = search(model, src, DecodeOptions(beam_size=3, n_best=3, max_len=6))
    for row, n in zip(gen.tokens.view(-1, gen.tokens.size(-1)), gen.lengths.view(-1).tolist()):
        assert 0 not in row[:n].tolist()
    assert TransformerConfig(src_vocab_size=13, tgt_vocab_size=13, pad_id=4, bos_id=4, eos_id=5).bos_id == 4
