"""The positional-encoding picture shows the §3.5 table, and PE(p)·PE(q) as a function of q - p."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transformer.embeddings import sinusoidal_encoding
from transformer.visualization import plot_positional_encoding

D, P = 64, 40


@pytest.fixture(scope="module")
def fig():
    return plot_positional_encoding(d_model=D, n_positions=P)


def panel(fig, title_start: str):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith(title_start)]
    return ax


def test_three_labelled_panels_and_a_colour_bar(fig):
    titles = sorted(ax.get_title()[:3] for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert titles == ["(a)", "(b)", "(c)"]
    assert len(fig.axes) == 4
    for ax in fig.axes:
        if ax.get_label() != "<colorbar>":
            assert ax.get_xlabel() and ax.get_ylabel()


def test_heatmap_is_the_table_positions_by_dimensions(fig):
    data = panel(fig, "(a)").images[0].get_array()
    assert data.shape == (P, D)
    np.testing.assert_array_equal(np.asarray(data), sinusoidal_encoding(P, D).numpy())
    # Spot-check the closed form of §3.5 on what is drawn: PE(pos, 2i) = sin(pos / 10000^(2i/D)).
    assert data[7, 10] == pytest.approx(math.sin(7 / 10000 ** (10 / D)), abs=1e-6)
    assert data[7, 11] == pytest.approx(math.cos(7 / 10000 ** (10 / D)), abs=1e-6)


def test_curves_are_columns_of_the_table(fig):
    ax = panel(fig, "(b)")
    table = sinusoidal_encoding(P, D).numpy()
    assert len(ax.lines) >= 3
    for line in ax.lines:
        dim = int(line.get_label().split()[1])
        np.testing.assert_array_equal(line.get_xdata(), np.arange(P))
        np.testing.assert_array_equal(line.get_ydata(), table[:, dim])
        kind = "sin" if dim % 2 == 0 else "cos"
        assert f"({kind}, wavelength {2 * math.pi * 10000 ** ((dim - dim % 2) / D):.0f})" in line.get_label()


def test_dot_product_curves_equal_direct_computation_and_depend_only_on_the_distance(fig):
    ax = panel(fig, "(c)")
    table = sinusoidal_encoding(P, D).double()
    omegas = 1.0 / 10000 ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    by_offset: dict[int, list[float]] = {}
    curves = [line for line in ax.lines if line.get_label().startswith("p = ")]
    assert [line.get_label() for line in curves] == ["p = 0", f"p = {P // 2}", f"p = {P - 1}"]
    for line in curves:
        p = int(line.get_label().removeprefix("p = "))
        offsets, values = line.get_xdata(), line.get_ydata()
        np.testing.assert_array_equal(offsets, np.arange(P) - p)
        direct = [float(table[p] @ table[p + int(k)]) for k in offsets]
        np.testing.assert_allclose(values, direct, rtol=0, atol=1e-9)
        # Closed form: sin a sin b + cos a cos b = cos(a - b), summed over the frequencies.
        closed = [float(torch.cos(int(k) * omegas).sum()) for k in offsets]
        np.testing.assert_allclose(values, closed, rtol=0, atol=1e-5)  # the table is float32
        for k, v in zip(offsets, values):
            by_offset.setdefault(abs(int(k)), []).append(float(v))
    assert by_offset[0] == pytest.approx([D / 2] * 3)  # |PE(p)|^2 = number of frequencies
    for k, values in by_offset.items():  # from every reference p, and for q - p = +k and -k alike
        assert max(values) - min(values) < 1e-5, k
    assert len(by_offset[1]) == 4  # offsets +1 and -1 both appear: symmetry is drawn, not assumed


def test_odd_d_model_and_chosen_dims():
    fig = plot_positional_encoding(d_model=7, n_positions=5, dims=[6])
    (line,) = panel(fig, "(b)").lines
    np.testing.assert_array_equal(line.get_ydata(), sinusoidal_encoding(5, 7)[:, 6].numpy())
    with pytest.raises(ValueError, match="dims"):
        plot_positional_encoding(d_model=8, n_positions=5, dims=[8])
    with pytest.raises(ValueError, match="n_positions >= 2"):
        plot_positional_encoding(d_model=8, n_positions=1)
