"""The feed-forward experiment: the compared models hold the same number of parameters; the quick run."""

from __future__ import annotations

import json

import pytest

from transformer.experiments import run_experiments
from transformer.experiments.feed_forward import DEEPER, MODELS, UNCOMPENSATED, WIDER, WITH, parameters
from transformer.experiments.task import SMALL


@pytest.mark.parametrize("vocab_size", [60, 120])  # the quick task's vocabulary and the full one's
def test_without_the_ffn_the_parameter_count_is_within_10_percent(vocab_size: int) -> None:
    with_ffn = parameters(SMALL, vocab_size)
    for architecture in (DEEPER, WIDER):
        assert abs(parameters(architecture, vocab_size) / with_ffn - 1) < 0.10
    assert parameters(UNCOMPENSATED, vocab_size) < 0.5 * with_ffn  # what the compensation gives back


def test_the_compensated_models_differ_only_in_ffn_and_depth_or_width() -> None:
    assert SMALL.feed_forward and not any(m.architecture.feed_forward for m in MODELS if m is not WITH)
    assert (DEEPER.d_model, DEEPER.n_heads) == (SMALL.d_model, SMALL.n_heads)
    assert DEEPER.n_encoder_layers > SMALL.n_encoder_layers and DEEPER.n_decoder_layers > SMALL.n_decoder_layers
    assert (WIDER.n_encoder_layers, WIDER.n_decoder_layers) == (SMALL.n_encoder_layers, SMALL.n_decoder_layers)
    wider = next(m for m in MODELS if m.architecture is WIDER)
    # the same peak learning rate: lr_scale * d_model^-0.5 equal for both widths
    assert wider.lr_scale * WIDER.d_model**-0.5 == pytest.approx(SMALL.d_model**-0.5)


def test_quick_run(tmp_path) -> None:
    run_experiments(["feed-forward"], tmp_path, seeds=2, quick=True)
    result = json.loads((tmp_path / "feed-forward" / "result.json").read_text())
    assert [row["model"] for row in result["table"]] == [m.label for m in MODELS]
    assert result["verdict"].split(":")[0] in ("Supported", "Not supported on this task", "More nuanced than claimed")
    for m in MODELS:
        assert m.same_parameters == (abs(result["numbers"]["parameter_ratio_to_ffn_model"][m.label] - 1) < 0.10)
        assert len(result["numbers"]["exact_match"][m.label]["values"]) == 2
    assert result["figures"] == ["feed_forward.png"] and (tmp_path / "feed-forward" / "feed_forward.png").is_file()
