"""The scaling experiment: its measurements at initialisation on known answers, and its quick run."""

from __future__ import annotations

import json
import math

from transformer.experiments import run_experiments
from transformer.experiments.scaling import at_initialisation


def test_unscaled_logits_spread_grows_like_sqrt_dk_and_the_scale_keeps_it_near_one() -> None:
    """Q and K of unit-variance components: q . k has variance d_k; the scale brings it back to 1."""
    seeds = range(3)
    std = {(d, scaled): sum(at_initialisation(d, scaled, s)["logit_std"] for s in seeds) / 3
           for d in (16, 64, 256, 1024) for scaled in (True, False)}
    for d in (64, 256, 1024):
        ratio = std[d, False] / std[16, False]
        assert abs(ratio / math.sqrt(d / 16) - 1) < 0.10, (d, ratio)
        assert abs(std[d, True] - 1) < 0.15, (d, std[d, True])
    big = at_initialisation(1024, False, 0), at_initialisation(1024, True, 0)
    assert big[0]["max_weight"] > 0.8 > big[1]["max_weight"]  # nearly one-hot without the scale
    assert big[0]["saturated"] > 0.5 and big[1]["saturated"] == 0.0
    assert big[0]["softmax_gain"] < big[1]["softmax_gain"] / 100  # the softmax lets almost no gradient through


def test_quick_run_writes_its_result_figures_and_report(tmp_path) -> None:
    report = run_experiments(["scaling"], tmp_path, seeds=1, quick=True)
    result = json.loads((tmp_path / "scaling" / "result.json").read_text())
    assert result["verdict"].split(":")[0] in ("Supported", "Not supported", "More nuanced than claimed")
    assert result["table"] and result["seeds"] == [0] and result["quick"] is True
    for figure in result["figures"]:
        path = tmp_path / "scaling" / figure
        assert path.is_file() and path.with_suffix(".svg").is_file()
    text = report.read_text()
    assert "## Scaled dot-product attention" in text and "Verdict: " in text
    assert "](scaling/initialisation.png)" in text
