"""The normalization experiment: batch invariance measured on known cases, and its quick run."""

from __future__ import annotations

import json

from transformer import Transformer
from transformer.experiments import run_experiments
from transformer.experiments.normalization import batch_mode, invariance_error

SENTENCE, OTHERS = [5, 6, 7, 8], [[9, 10], [11, 12, 3, 4, 5, 6]]


def test_batch_norm_in_training_mode_depends_on_the_batch_and_its_padding(make_cfg) -> None:
    for norm in ("layer", "rms", "batch"):
        model = Transformer(make_cfg(norm=norm))
        for training in (True, False):
            error = invariance_error(batch_mode(model, training), SENTENCE, OTHERS, 8, 0, 2)
            assert (error > 1e-3) == (norm == "batch" and training), (norm, training, error)
    model = batch_mode(Transformer(make_cfg(norm="batch")), True)
    assert invariance_error(model, SENTENCE, OTHERS, 32, 0, 2) != invariance_error(model, SENTENCE, OTHERS, 0, 0, 2)


def test_quick_run(tmp_path) -> None:
    run_experiments(["normalization"], tmp_path, seeds=1, quick=True)
    result = json.loads((tmp_path / "normalization" / "result.json").read_text())
    assert [row["normalisation"] for row in result["table"]] == ["layer", "rms", "batch", "none"]
    assert max(result["numbers"]["invariance_error"]["layer/train"]) < 1e-4
    assert max(result["numbers"]["invariance_error"]["batch/train"]) > 1e-3
