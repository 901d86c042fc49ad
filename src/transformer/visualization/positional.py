"""The sinusoidal positional encoding of §3.5, drawn three ways.

Shapes: P positions, D d_model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..embeddings import sinusoidal_encoding


def _default_dims(d_model: int) -> list[int]:
    """The fastest sine, a sine with its cosine (a quarter period apart), then slower sines."""
    k = 2 * (d_model // 16)
    return sorted({d for d in (0, k, k + 1, 2 * (d_model // 8), 2 * (d_model // 4)) if d < d_model})


def _wavelength(dim: int, d_model: int) -> float:
    """2π · 10000^(2i/d_model) for dimension 2i or 2i+1 (§3.5)."""
    return 2 * math.pi * 10000 ** ((dim - dim % 2) / d_model)


def plot_positional_encoding(d_model: int = 128, n_positions: int = 100, dims: Sequence[int] | None = None) -> Figure:
    """The sinusoidal positional encoding of §3.5, three ways.

    (a) the table PE as a heatmap, positions x dimensions; (b) a few dimensions as curves over the
    positions, each a sinusoid of its own wavelength; (c) the dot product PE(p)·PE(q) against the
    offset q - p, computed from the table for several reference positions p: the curves coincide
    and are symmetric, because the dot product is sum_i cos((q - p) ω_i), a function of |p - q| only.

    Args:
        d_model: dimensions of the encoding.
        n_positions: positions 0 .. n_positions - 1.
        dims: the dimensions drawn in (b); default a handful from fast to slow.
    """
    if d_model < 1 or n_positions < 2:
        raise ValueError(f"need d_model >= 1 and n_positions >= 2, got {d_model} and {n_positions}")
    dims = _default_dims(d_model) if dims is None else list(dims)
    if any(not 0 <= d < d_model for d in dims):
        raise ValueError(f"dims {dims} must lie in 0..{d_model - 1}")
    table = sinusoidal_encoding(n_positions, d_model)  # (P, D)
    fig = Figure(figsize=(13, 9), layout="constrained")
    axes = fig.subplot_mosaic([["table", "table"], ["curves", "dots"]], height_ratios=[1.1, 1])
    fig.suptitle(f"Sinusoidal positional encoding (§3.5), d_model = {d_model}")

    ax = axes["table"]
    image = ax.imshow(table.numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set(title="(a) the table PE(pos, dim): sin in even dimensions, cos in odd ones", xlabel="dimension",
           ylabel="position")
    fig.colorbar(image, ax=ax, label="value", pad=0.01)

    ax = axes["curves"]
    for d in dims:
        label = f"dim {d} ({'sin' if d % 2 == 0 else 'cos'}, wavelength {_wavelength(d, d_model):.0f})"
        ax.plot(range(n_positions), table[:, d].numpy(), label=label, lw=0.8 if d == 0 else 1.6)
    ax.set(title="(b) a few dimensions over the positions", xlabel="position", ylabel="PE(pos, dim)",
           ylim=(-1.1, 1.55))
    ax.legend(fontsize=8, loc="upper right", ncols=2)

    ax = axes["dots"]
    table64 = table.double()
    for p in sorted({0, n_positions // 2, n_positions - 1}):
        offsets = np.arange(n_positions) - p
        ax.plot(offsets, (table64 @ table64[p]).numpy(), label=f"p = {p}", lw=2.5 if p == 0 else 1.2,
                ls="-" if p == 0 else "--")
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set(title="(c) PE(p)·PE(q) = Σᵢ cos((q − p)·ωᵢ): a function of |q − p| only", xlabel="offset q − p",
           ylabel="PE(p)·PE(q)")
    ax.legend(fontsize=8, title="reference position", title_fontsize=8)
    return fig
