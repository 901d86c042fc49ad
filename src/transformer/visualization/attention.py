"""Attention heatmaps (§3.2): what each query attends to, per layer and head.

Heatmaps draw one row per query and one column per key; row i of a panel is the probability
distribution query i spreads over the keys (it sums to 1). Keys a query may not attend to (the
future, in the decoder's masked self-attention) are drawn grey. All panels of a figure share one
colour scale, from 0 to the largest weight shown, so panels can be compared.

Shapes: L layers, H heads, Tq query length, Tk key length.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torch import Tensor

if TYPE_CHECKING:
    from ..translator import AttentionResult

_CMAP = colormaps["viridis"].with_extremes(bad="#d0d0d0")  # grey: a key the query may not attend to


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def _check_labels(shape: Sequence[int], row_labels: Sequence[str], col_labels: Sequence[str]) -> None:
    if len(row_labels) != shape[-2] or len(col_labels) != shape[-1]:
        raise ValueError(
            f"weights of shape {tuple(shape)} need {shape[-2]} row labels and {shape[-1]} column labels, "
            f"got {len(row_labels)} and {len(col_labels)}"
        )


def _panel_inches(n_rows: int, n_cols: int, single: bool) -> tuple[float, float, float]:
    """Width and height of one heatmap, and the font size (points) that fits one token per cell."""
    biggest, smallest = (8.0, 3.0) if single else (3.5, 1.2)
    cell = min(0.4 if single else 0.32, biggest / max(n_rows, n_cols, 1))  # inches per token
    font = float(np.clip(cell * 72 * 0.75, 4.0, 10.0))
    return max(smallest, cell * n_cols), max(smallest, cell * n_rows), font


def _heatmap(
    ax: Axes,
    weights: np.ndarray,
    blocked: np.ndarray | None,
    row_labels: Sequence[str] | None,
    col_labels: Sequence[str] | None,
    vmax: float,
    font: float,
) -> AxesImage:
    """One (Tq, Tk) panel; tokens label the rows and columns given (None: that axis has no ticks)."""
    data = np.ma.masked_array(weights, mask=np.zeros(weights.shape, bool) if blocked is None else blocked)
    image = ax.imshow(data, cmap=_CMAP, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    # Ticks are costly in matplotlib, so a grid labels only its outer panels. parse_math=False: a
    # token such as "$5" is text, not the start of a formula.
    if col_labels is None:
        ax.set_xticks([])
    else:
        ax.set_xticks(range(len(col_labels)), list(col_labels), rotation=90, fontsize=font, parse_math=False)
    if row_labels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks(range(len(row_labels)), list(row_labels), fontsize=font, parse_math=False)
    ax.tick_params(length=0)
    return image


def _blocked_array(blocked: Tensor | None, shape: Sequence[int]) -> np.ndarray | None:
    if blocked is None:
        return None
    if tuple(blocked.shape) != tuple(shape[-2:]):
        raise ValueError(f"blocked must be (Tq, Tk) = {tuple(shape[-2:])}, got {tuple(blocked.shape)}")
    return blocked.detach().to("cpu", torch.bool).numpy()


def plot_attention_grid(
    weights: Sequence[Tensor],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
    *,
    blocked: Tensor | None = None,
    layer_ids: Sequence[int] | None = None,
    head_ids: Sequence[int] | None = None,
    ylabel: str = "query",
    xlabel: str = "key",
) -> Figure:
    """A grid of heatmaps, one row of panels per layer and one column per head, with one colour bar.

    Args:
        weights: one tensor per layer, each (H, Tq, Tk); row i of a head is query i's weights.
        row_labels: the Tq query tokens, top to bottom.
        col_labels: the Tk key tokens, left to right.
        title: the figure's title.
        blocked: (Tq, Tk) bool, True = the query may not attend to the key (drawn grey), e.g. the
            future in masked self-attention; None = nothing blocked.
        layer_ids, head_ids: the numbers shown in panel titles (default 0, 1, ...), for a selection.
        ylabel, xlabel: what the rows and columns are.

    Returns: the figure; ``fig.axes`` holds the L x H panels row by row, then the colour bar. Tokens
    label the rows of the left column and the columns of the bottom row of panels.
    """
    if not weights:
        raise ValueError("no attention weights to plot (the model has no such layers)")
    arrays = [_numpy(w) for w in weights]
    shape = arrays[0].shape
    if any(a.ndim != 3 or a.shape != shape for a in arrays):
        raise ValueError(f"every layer's weights must be (H, Tq, Tk) of one shape, got {[a.shape for a in arrays]}")
    _check_labels(shape, row_labels, col_labels)
    n_layers, n_heads = len(arrays), shape[0]
    layer_ids = list(range(n_layers)) if layer_ids is None else list(layer_ids)
    head_ids = list(range(n_heads)) if head_ids is None else list(head_ids)
    mask = _blocked_array(blocked, shape)
    vmax = max(float(a.max()) for a in arrays) or 1.0
    width, height, font = _panel_inches(shape[1], shape[2], single=n_layers * n_heads == 1)
    fig_width = max(6.0, n_heads * (width + 0.8) + 1.2)
    fig = Figure(figsize=(fig_width, n_layers * (height + 0.8) + 1.2), layout="constrained")
    axes = fig.subplots(n_layers, n_heads, squeeze=False)
    for li, layer in enumerate(arrays):
        for hi in range(n_heads):
            ax = axes[li, hi]
            left, bottom = hi == 0, li == n_layers - 1
            image = _heatmap(ax, layer[hi], mask, row_labels if left else None, col_labels if bottom else None,
                             vmax, font)
            ax.set_title(f"layer {layer_ids[li]}, head {head_ids[hi]}", fontsize=9)
            if hi == 0:
                ax.set_ylabel(ylabel)
            if li == n_layers - 1:
                ax.set_xlabel(xlabel)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=min(1.0, 0.9 / n_layers + 0.3), label="attention weight")
    if title:
        # Wrap each line of a long title (a sentence) to the figure's width rather than clip it.
        lines = title.splitlines()
        fig.suptitle("\n".join(textwrap.fill(line, width=int(fig_width * 10)) for line in lines), fontsize=11)
    return fig


def plot_attention_head(
    weights: Tensor,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
    *,
    blocked: Tensor | None = None,
    ylabel: str = "query",
    xlabel: str = "key",
) -> Figure:
    """One head's (Tq, Tk) weights as a heatmap with a colour bar; arguments as ``plot_attention_grid``."""
    if weights.dim() != 2:
        raise ValueError(f"weights must be (Tq, Tk), got shape {tuple(weights.shape)}")
    fig = plot_attention_grid([weights[None]], row_labels, col_labels, None, blocked=blocked, ylabel=ylabel,
                              xlabel=xlabel)
    fig.axes[0].set_title(title or "")
    return fig


def _select(weights: list[Tensor], layer: int | None, head: int | None) -> tuple[list[Tensor], list[int], list[int]]:
    """Batch-1 weights [(1, H, Tq, Tk)] per layer -> the chosen [(H', Tq, Tk)], layer ids, head ids."""
    if weights[0].dim() != 4 or weights[0].size(0) != 1:
        raise ValueError(f"expected weights of one sentence, (1, H, Tq, Tk) per layer, got {tuple(weights[0].shape)}")
    n_layers, n_heads = len(weights), weights[0].size(1)
    for name, index, n in (("layer", layer, n_layers), ("head", head, n_heads)):
        if index is not None and not -n <= index < n:
            raise ValueError(f"{name} {index} does not exist: the model has {n} (numbered 0..{n - 1})")
    layer_ids = list(range(n_layers)) if layer is None else [layer % n_layers]
    head_ids = list(range(n_heads)) if head is None else [head % n_heads]
    return [weights[li][0, head_ids] for li in layer_ids], layer_ids, head_ids


def _join_pieces(pieces: Sequence[str]) -> str:
    """Subwords back to text: SentencePiece marks a word start with "▁"; other pieces are words."""
    if any(p.startswith("▁") for p in pieces):
        return "".join(pieces).replace("▁", " ").strip()
    return " ".join(pieces)


def attention_figures(result: AttentionResult, layer: int | None = None, head: int | None = None) -> dict[str, Figure]:
    """The three kinds of attention in one translation, one figure each.

    ``"encoder"``: self-attention over the source (source x source). ``"decoder"``: masked self-attention
    over the decoder input ("<s>" then the output), the future drawn grey. ``"cross"``: encoder-decoder
    attention, the alignment; row i is the query that predicts output token i, labelled with it.

    Args:
        result: ``Translator.attention(text)``; its maps have batch 1.
        layer, head: draw only this layer and/or head (0-based; negative counts from the end);
            None = all of them.

    Returns: {"encoder": Figure, "decoder": Figure, "cross": Figure}.
    """
    maps, src, tgt, out = result.maps, result.src_pieces, result.tgt_pieces, result.output_pieces
    t = len(tgt)
    future = torch.ones(t, t, dtype=torch.bool).triu(diagonal=1)  # key after query: never attended (§3.2.3)
    kinds = {
        "encoder": (maps.encoder, src, src, "source (query)", "source (key)", None,
                    "Encoder self-attention"),
        "decoder": (maps.decoder_self, tgt, tgt, "decoder input (query)", "decoder input (key)", future,
                    "Decoder masked self-attention"),
        "cross": (maps.cross, out, src, "output being predicted", "source", None,
                  "Encoder-decoder attention"),
    }
    figures = {}
    for kind, (weights, rows, cols, ylabel, xlabel, blocked, name) in kinds.items():
        if not weights:
            continue  # a model without encoder (or decoder) layers
        chosen, layer_ids, head_ids = _select(weights, layer, head)
        title = f"{name}\nsource: {_join_pieces(src[:-1])}\noutput: {result.translation}"
        figures[kind] = plot_attention_grid(chosen, rows, cols, title, blocked=blocked, layer_ids=layer_ids,
                                            head_ids=head_ids, ylabel=ylabel, xlabel=xlabel)
    return figures
