"""Embeddings (§3.4) and positional encodings (§3.5) against their closed forms, computed with math.

PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).
"""

from __future__ import annotations

import math

import pytest
import torch

from transformer import Transformer
from transformer.embeddings import PositionalEncoding, TokenEmbedding, sinusoidal_encoding


def closed_form(pos: int, dim: int, d_model: int) -> float:
    """The paper's PE(pos, dim): dim = 2i is a sine, dim = 2i + 1 the cosine of the same frequency."""
    two_i = dim - dim % 2
    angle = pos / 10000 ** (two_i / d_model)
    return math.sin(angle) if dim % 2 == 0 else math.cos(angle)


POINTS = [(0, 0), (0, 1), (1, 0), (1, 1), (3, 2), (7, 5), (50, 10), (50, 11), (123, 64), (511, 200), (1000, 511)]


@pytest.mark.parametrize("d_model", [512, 7, 33])
def test_sinusoidal_table_matches_closed_form(d_model: int) -> None:
    table = sinusoidal_encoding(1001, d_model)
    assert table.shape == (1001, d_model) and table.dtype == torch.float32
    for pos, dim in POINTS:
        dim = dim % d_model
        assert table[pos, dim].item() == pytest.approx(closed_form(pos, dim, d_model), abs=1e-6), (pos, dim)


@pytest.mark.parametrize("d_model", [6, 7])
def test_every_entry_of_a_small_table(d_model: int) -> None:
    """Odd d_model: the last dimension is a sine and there is one cosine fewer."""
    table = sinusoidal_encoding(20, d_model)
    expected = torch.tensor([[closed_form(p, d, d_model) for d in range(d_model)] for p in range(20)])
    torch.testing.assert_close(table, expected, atol=1e-6, rtol=0)


def test_positional_encoding_adds_pe_at_the_offset() -> None:
    pe = PositionalEncoding(d_model=10, max_positions=32).eval()
    x = torch.randn(2, 4, 10)
    for offset in (0, 5):
        out = pe(x, offset=offset)
        expected = torch.tensor([[closed_form(offset + t, d, 10) for d in range(10)] for t in range(4)])
        torch.testing.assert_close(out - x, expected.expand(2, 4, 10), atol=1e-6, rtol=0)


def test_table_grows_past_max_positions_with_the_same_values() -> None:
    pe = PositionalEncoding(d_model=9, max_positions=8).eval()
    before = pe.encodings(0, 8).clone()
    grown = pe.encodings(5, 20)  # positions 5..24, past the table of 8
    assert grown.shape == (20, 9)
    expected = torch.tensor([[closed_form(p, d, 9) for d in range(9)] for p in range(5, 25)])
    torch.testing.assert_close(grown, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(pe.encodings(0, 8), before, atol=0, rtol=0)
    out = pe(torch.zeros(1, 30, 9))  # whole sequences longer than max_positions too
    torch.testing.assert_close(out[0, 29], torch.tensor([closed_form(29, d, 9) for d in range(9)]), atol=1e-6, rtol=0)


def test_learned_encodings_refuse_positions_past_the_table() -> None:
    pe = PositionalEncoding(d_model=4, max_positions=8, kind="learned")
    assert pe.encodings(0, 8).shape == (8, 4)
    with pytest.raises(ValueError, match="max_positions"):
        pe.encodings(4, 5)


def test_unknown_positional_kind_is_named() -> None:
    with pytest.raises(ValueError, match="rotary"):
        PositionalEncoding(d_model=4, max_positions=8, kind="rotary")


def test_positional_dropout_only_in_training() -> None:
    pe = PositionalEncoding(d_model=8, max_positions=16, dropout=0.5)
    x = torch.randn(2, 5, 8)
    pe.train()
    assert bool((pe(x) == 0).any())
    pe.eval()
    torch.testing.assert_close(pe(x), x + sinusoidal_encoding(5, 8), atol=1e-6, rtol=0)


def test_token_embedding_is_scaled_by_sqrt_d_model() -> None:
    emb = TokenEmbedding(vocab_size=11, d_model=16, pad_id=0)
    torch.nn.init.normal_(emb.weight)
    tokens = torch.tensor([[3, 4, 0], [10, 1, 2]])
    out = emb(tokens)
    assert out.shape == (2, 3, 16)
    torch.testing.assert_close(out, emb.weight[tokens] * 4.0, atol=0, rtol=0)


def test_pad_embedding_gets_no_gradient() -> None:
    emb = TokenEmbedding(vocab_size=5, d_model=4, pad_id=0)
    torch.nn.init.normal_(emb.weight)
    emb(torch.tensor([[0, 3, 0, 4]])).sum().backward()
    assert emb.weight.grad is not None
    assert bool((emb.weight.grad[0] == 0).all())
    assert bool((emb.weight.grad[3] != 0).all())


def test_model_initialises_pad_embedding_to_zero(make_cfg) -> None:
    model = Transformer(make_cfg(src_vocab_size=9, tgt_vocab_size=11))
    assert bool((model.src_embed.weight[0] == 0).all()) and bool((model.tgt_embed.weight[0] == 0).all())
    assert bool((model.tgt_embed.weight[1:].abs().sum(dim=1) > 0).all())


def test_incremental_decoding_step_t_adds_pe_of_t(make_cfg) -> None:
    """The embedding entering the decoder at step t is E[y_t] * sqrt(D) + PE(t), via a forward hook."""
    model = Transformer(make_cfg(d_model=12, n_encoder_layers=1, n_decoder_layers=1)).eval()
    added: list[torch.Tensor] = []
    model.tgt_pos.register_forward_hook(lambda module, args, out: added.append(out - args[0]))
    src = torch.tensor([[3, 4, 5, 6]])
    tokens = [1, 7, 8, 9, 10, 11]
    with torch.no_grad():
        state = model.start_state(model.encode(src), model.source_mask(src), capacity=2)  # grows on the way
        for token in tokens:
            _, state = model.decode_step(torch.tensor([token]), state)
    assert len(added) == len(tokens)
    for t, diff in enumerate(added):
        assert diff.shape == (1, 1, 12)
        expected = torch.tensor([closed_form(t, d, 12) for d in range(12)])
        torch.testing.assert_close(diff[0, 0], expected, atol=1e-5, rtol=0)


def test_the_halves_layout_is_the_paper_table_with_its_dimensions_permuted() -> None:
    """Marian's (and fairseq's) table: all the sines, then all the cosines, of the same frequencies."""
    from transformer.embeddings import sinusoid_permutation

    d = 10
    interleaved, halves = sinusoidal_encoding(50, d), sinusoidal_encoding(50, d, "halves")
    torch.testing.assert_close(halves, interleaved[:, sinusoid_permutation(d, "halves")], atol=0, rtol=0)
    for pos, i in ((0, 0), (7, 2), (49, 4)):
        assert halves[pos, i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / d)), abs=1e-6)
        assert halves[pos, d // 2 + i].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / d)), abs=1e-6)
    with pytest.raises(ValueError, match="blocks"):
        sinusoidal_encoding(5, d, "blocks")


def test_embeddings_can_be_left_unscaled() -> None:
    scaled, plain = TokenEmbedding(11, 16, pad_id=0), TokenEmbedding(11, 16, pad_id=0, scale=False)
    plain.weight = scaled.weight
    tokens = torch.tensor([[3, 4, 0]])
    torch.testing.assert_close(scaled(tokens), plain(tokens) * 4.0)  # sqrt(16)
    torch.testing.assert_close(plain(tokens), scaled.weight[tokens], atol=0, rtol=0)
