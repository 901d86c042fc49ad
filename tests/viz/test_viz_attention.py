"""Attention heatmaps: the pictures hold exactly the model's weights, labelled with the right tokens."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from transformer.masks import causal_mask
from transformer.translator import AttentionResult
from transformer.visualization import attention_figures, plot_attention_grid, plot_attention_head

SRC = ["the", "cat", "sat", "on", "the", "mat", "</s>"]
OUT = ["die", "Katze", "$5"]


def panels(fig):
    """The heatmap axes, row by row (colour bars hold no image)."""
    return [ax for ax in fig.axes if ax.images]


def image(ax) -> np.ma.MaskedArray:
    return ax.images[0].get_array()


def texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


@pytest.fixture
def result(viz_model, word_vocab) -> AttentionResult:
    """Real weights of the tiny model for one sentence pair (batch 1), decoder input = <s> + OUT."""
    src = torch.tensor([[word_vocab.index[w] for w in SRC]])
    tgt_in = torch.tensor([[1] + [word_vocab.index[w] for w in OUT]])
    with torch.no_grad():
        _, maps = viz_model.forward_with_attention(src, tgt_in)
    return AttentionResult(SRC, ["<s>", *OUT], [*OUT, "</s>"], " ".join(OUT), maps)


def test_model_weights_are_distributions_with_masked_keys_at_exactly_zero(viz_model):
    """The numbers the pictures show: rows sum to 1, the future and padded source keys get exactly 0."""
    src = torch.tensor([[4, 5, 6, 7, 2], [8, 9, 2, 0, 0]])  # second sentence padded after 3 tokens
    tgt_in = torch.tensor([[1, 13, 14, 12], [1, 10, 0, 0]])
    with torch.no_grad():
        _, maps = viz_model.forward_with_attention(src, tgt_in)
    assert len(maps.encoder) == 2 and len(maps.decoder_self) == 3 and len(maps.cross) == 3
    src_real = (src != 0)[:, None, None, :]  # (B, 1, 1, S)
    tgt_real = (tgt_in != 0)[:, None, :, None]  # queries that are real tokens
    future = ~causal_mask(4)  # (1, 1, T, T)
    for w in maps.encoder:  # (B, H, S, S)
        assert torch.all(w.masked_select(~src_real.expand_as(w)) == 0)
        rows = w.sum(-1).masked_select((src != 0)[:, None, :].expand(-1, w.size(1), -1))
        torch.testing.assert_close(rows, torch.ones_like(rows))
    for w in maps.decoder_self:  # (B, H, T, T)
        assert torch.all(w.masked_select(future.expand_as(w)) == 0)
        assert torch.all(w[1, :, :, 2:] == 0)  # padded decoder keys
        rows = w.sum(-1).masked_select(tgt_real[..., 0].expand(-1, w.size(1), -1))
        torch.testing.assert_close(rows, torch.ones_like(rows))
    for w in maps.cross:  # (B, H, T, S)
        assert torch.all(w[1, :, :, 3:] == 0)  # padded source keys
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))  # every query sees a real source key


def test_each_kind_shows_every_layer_and_head_with_the_exact_weights(result):
    figs = attention_figures(result)
    assert set(figs) == {"encoder", "decoder", "cross"}
    expected = {"encoder": (result.maps.encoder, SRC, SRC),
                "decoder": (result.maps.decoder_self, ["<s>", *OUT], ["<s>", *OUT]),
                "cross": (result.maps.cross, [*OUT, "</s>"], SRC)}
    for kind, (weights, rows, cols) in expected.items():
        fig = figs[kind]
        n_layers, n_heads = len(weights), weights[0].size(1)
        axes = panels(fig)
        assert len(axes) == n_layers * n_heads, kind
        assert len(fig.axes) == len(axes) + 1  # plus one shared colour bar
        assert [ax.get_label() for ax in fig.axes if not ax.images] == ["<colorbar>"]
        biggest = max(float(w.max()) for w in weights)
        for li in range(n_layers):
            for hi in range(n_heads):
                ax = axes[li * n_heads + hi]
                np.testing.assert_array_equal(image(ax).data, weights[li][0, hi].numpy())
                assert ax.get_title() == f"layer {li}, head {hi}"
                # Tokens label the left column's rows and the bottom row's columns; inner panels have no ticks.
                assert texts(ax.get_yticklabels()) == (rows if hi == 0 else [])
                assert texts(ax.get_xticklabels()) == (cols if li == n_layers - 1 else [])
                assert ax.images[0].get_clim() == pytest.approx((0.0, biggest))  # one scale for all panels


def test_decoder_picture_shows_the_causal_triangle(result):
    figs = attention_figures(result)
    fig = figs["decoder"]
    t = len(result.tgt_pieces)
    future = np.triu(np.ones((t, t), dtype=bool), k=1)
    for ax in panels(fig):
        data = image(ax)
        assert np.all(data.data[future] == 0.0)  # exactly zero above the diagonal
        np.testing.assert_array_equal(np.ma.getmaskarray(data), future)  # and drawn in the "blocked" colour
        np.testing.assert_allclose(data.data.sum(axis=1), np.ones(t), rtol=1e-6)
        assert np.all(data.data[~future] > 0)
    # Nothing is blocked in the encoder or cross-attention of one unpadded sentence.
    for kind in ("encoder", "cross"):
        assert not any(np.ma.getmaskarray(image(ax)).any() for ax in panels(figs[kind]))


def test_cross_attention_is_the_alignment_of_outputs_to_source(result):
    fig = attention_figures(result)["cross"]
    data = image(panels(fig)[0]).data
    assert data.shape == (len(OUT) + 1, len(SRC))
    np.testing.assert_allclose(data.sum(axis=1), np.ones(len(OUT) + 1), rtol=1e-6)
    assert "source: the cat sat on the mat" in fig.get_suptitle()
    assert "output: die Katze $5" in fig.get_suptitle()


@pytest.mark.parametrize(("layer", "head", "n_panels"), [(1, 0, 1), (-1, 1, 1), (0, None, 2), (None, 1, None)])
def test_one_layer_or_head(result, layer, head, n_panels):
    figs = attention_figures(result, layer=layer, head=head)
    for kind, weights in (("encoder", result.maps.encoder), ("cross", result.maps.cross)):
        n_layers, n_heads = len(weights), weights[0].size(1)
        layers = range(n_layers) if layer is None else [layer % n_layers]
        heads = range(n_heads) if head is None else [head]
        axes = panels(figs[kind])
        assert len(axes) == (n_panels or n_layers)
        shown = [(li, hi) for li in layers for hi in heads]
        assert len(axes) == len(shown)
        for ax, (li, hi) in zip(axes, shown):
            np.testing.assert_array_equal(image(ax).data, weights[li][0, hi].numpy())
            assert ax.get_title() == f"layer {li}, head {hi}"


def test_a_layer_or_head_that_does_not_exist_is_a_clear_error(result):
    with pytest.raises(ValueError, match=r"layer 2 does not exist: the model has 2 \(numbered 0..1\)"):
        attention_figures(result, layer=2)  # the encoder has 2 layers
    with pytest.raises(ValueError, match="head 5 does not exist"):
        attention_figures(result, head=5)
    maps = result.maps
    batch2 = type(maps)(*([torch.cat([w, w]) for w in ws] for ws in (maps.encoder, maps.decoder_self, maps.cross)))
    with pytest.raises(ValueError, match="weights of one sentence"):
        attention_figures(dataclasses.replace(result, maps=batch2))


def test_plot_attention_head_from_plain_tensors():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    rows, cols = ["a", "$5", "b$"], ["w", "x", "$y$", "z"]  # "$...$" stays text, not a formula
    fig = plot_attention_head(weights, rows, cols, title="one head")
    (ax,) = panels(fig)
    np.testing.assert_array_equal(image(ax).data, weights.numpy())
    assert texts(ax.get_yticklabels()) == rows and texts(ax.get_xticklabels()) == cols
    assert ax.get_title() == "one head"
    fig.canvas.draw()  # renders without mathtext errors
    with pytest.raises(ValueError, match="need 3 row labels and 4 column labels, got 2 and 4"):
        plot_attention_head(weights, rows[:2], cols)
    with pytest.raises(ValueError, match=r"must be \(Tq, Tk\)"):
        plot_attention_head(weights[None], rows, cols)


def test_plot_attention_grid_checks_its_input():
    w = torch.softmax(torch.randn(2, 3, 3), dim=-1)
    with pytest.raises(ValueError, match="no attention weights"):
        plot_attention_grid([], ["a"], ["a"])
    with pytest.raises(ValueError, match="one shape"):
        plot_attention_grid([w, w[:1]], ["a", "b", "c"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="blocked must be"):
        plot_attention_grid([w], ["a", "b", "c"], ["a", "b", "c"], blocked=torch.zeros(2, 3, dtype=torch.bool))


def test_figures_from_a_translator_over_a_random_model(short_translator):
    """The path the CLI takes: Translator.attention, then attention_figures."""
    result = short_translator.attention("the cat sat on the mat")  # greedy, at most 6 tokens
    assert 1 <= len(result.tgt_pieces) <= 7 and result.tgt_pieces[0] == "<s>"
    figs = attention_figures(result)
    assert texts(panels(figs["encoder"])[0].get_yticklabels()) == SRC
    cross = image(panels(figs["cross"])[0]).data
    assert cross.shape == (len(result.output_pieces), len(SRC))
    np.testing.assert_allclose(cross.sum(axis=1), 1.0, rtol=1e-6)
    dec = image(panels(figs["decoder"])[0]).data
    assert np.all(dec[np.triu_indices(len(result.tgt_pieces), k=1)] == 0)
