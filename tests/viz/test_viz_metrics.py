"""Training curves plot exactly the steps and values of metrics.jsonl."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from transformer.visualization import load_metrics, plot_metrics

RECORDS = [
    {"step": 100, "loss": 5.0, "lr": 1e-4, "tokens_per_s": 5000.0},
    {"step": 200, "loss": 4.1, "lr": 2e-4, "tokens_per_s": 5100.0, "epoch": 1},
    {"step": 200, "valid_loss": 4.4, "valid_ppl": 81.5, "valid_bleu": 1.5},
    {"step": 300, "loss": 3.6, "lr": 3e-4},
    {"step": 400, "loss": 3.2, "lr": 2.6e-4, "valid_loss": 3.5, "valid_bleu": 7.25},
    {"note": "no step: not drawn", "loss": 99.0},
]


def lines_by_label(fig) -> dict[str, tuple[list[float], list[float]]]:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for ax in fig.axes for line in ax.lines}


def test_exactly_the_recorded_steps_and_values():
    fig = plot_metrics(RECORDS)
    lines = lines_by_label(fig)
    assert lines == {
        "train loss": ([100, 200, 300, 400], [5.0, 4.1, 3.6, 3.2]),
        "valid loss": ([200, 400], [4.4, 3.5]),
        "valid BLEU": ([200, 400], [1.5, 7.25]),
        "lr": ([100, 200, 300, 400], [1e-4, 2e-4, 3e-4, 2.6e-4]),
    }
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Validation BLEU", "Learning rate"]
    assert fig.axes[-1].get_xlabel() == "step"
    shared = fig.axes[0].get_shared_x_axes()
    assert all(shared.joined(fig.axes[0], ax) for ax in fig.axes)


def test_panels_without_data_are_left_out():
    fig = plot_metrics([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    assert [ax.get_title() for ax in fig.axes] == ["Loss"]
    assert lines_by_label(fig) == {"train loss": ([1, 2], [2.0, 1.5])}


def test_nothing_to_plot_or_a_non_number_is_an_error():
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_metrics([{"step": 1, "tokens_per_s": 10.0}, {"loss": 3.0}])
    with pytest.raises(ValueError, match=r"record 1: loss='high' is not a number"):
        plot_metrics([{"step": 1, "loss": 3.0}, {"step": 2, "loss": "high"}])


def test_load_metrics_reads_a_file_or_a_run_directory(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:3]) + "\n")  # a trailing blank line
    assert load_metrics(path) == RECORDS[:3]
    assert load_metrics(tmp_path) == RECORDS[:3]
    fig = plot_metrics(load_metrics(tmp_path))
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), [100, 200])


def test_load_metrics_names_the_file_and_line_of_bad_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n\n{"step": 2, "loss": \n')
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 3: not valid JSON")):
        load_metrics(path)
    path.write_text('{"step": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 2: expected a JSON object, got list")):
        load_metrics(path)
    with pytest.raises(FileNotFoundError, match="no metrics file"):
        load_metrics(tmp_path / "missing")
