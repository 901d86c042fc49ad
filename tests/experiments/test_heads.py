"""The heads experiment: the heads' Jensen-Shannon divergence on known cases (nats), padding left out, the quick
run end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from transformer import Transformer
from transformer.experiments import run_experiments
from transformer.experiments.heads import KINDS, divergences, head_divergence, pairwise_jsd

LOG2 = math.log(2)


def test_identical_heads_diverge_by_zero() -> None:
    p = torch.softmax(torch.randn(5, 1, 7), -1).expand(5, 4, 7)  # (N, H, K): four copies of each row
    assert pairwise_jsd(p).tolist() == pytest.approx([0.0] * 5, abs=1e-6)


def test_disjoint_one_hot_heads_diverge_by_log_2_nats() -> None:
    p = torch.eye(4)[None].expand(3, 4, 4)  # head h attends to key h only
    assert pairwise_jsd(p).tolist() == pytest.approx([LOG2] * 3, abs=1e-6)


def test_the_mean_is_over_every_pair_of_heads() -> None:
    p = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])  # pairs: 0, log 2, log 2
    assert pairwise_jsd(p).item() == pytest.approx(2 / 3 * LOG2, abs=1e-6)


def test_jsd_of_partly_overlapping_distributions_by_hand() -> None:
    p = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]])  # M = (1/4, 1/2, 1/4): each KL = log 2 / 2
    assert pairwise_jsd(p).item() == pytest.approx(LOG2 / 2, abs=1e-6)


def test_a_subnormal_weight_gives_a_finite_divergence() -> None:
    p = torch.tensor([[[1e-45, 1.0], [0.0, 1.0]]])  # float32: (1e-45 + 0) / 2 rounds to 0 there
    assert pairwise_jsd(p).item() == pytest.approx(0.0, abs=1e-6)


def test_one_head_has_no_pairs() -> None:
    weights = torch.softmax(torch.randn(2, 1, 3, 3), -1)
    assert math.isnan(head_divergence(weights, torch.ones(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)))


def test_padded_queries_and_keys_are_left_out() -> None:
    g = torch.Generator().manual_seed(0)
    weights = torch.softmax(torch.randn(1, 3, 4, 4, generator=g), -1)  # (B, H, Tq, Tk), a sentence of 4 tokens
    real = torch.ones(1, 4, dtype=torch.bool)
    alone = head_divergence(weights, real, real)
    padded = torch.rand(1, 3, 6, 6, generator=g)  # garbage in the padded rows and columns
    padded[:, :, :4, :4] = weights
    padded[:, :, :4, 4:] = 0.3  # the real rows' weight on padding, dropped and the rest renormalised
    padded[:, :, :4, :4] *= 0.4
    mask = torch.tensor([[True] * 4 + [False] * 2])
    assert head_divergence(padded, mask, mask) == pytest.approx(alone, abs=1e-6)


def test_queries_seeing_one_key_are_left_out() -> None:
    weights = torch.zeros(1, 2, 2, 2)
    weights[0, :, 0, 0] = 1.0  # the decoder's first position: one key, heads necessarily alike
    weights[0, 0, 1] = torch.tensor([1.0, 0.0])
    weights[0, 1, 1] = torch.tensor([0.0, 1.0])
    causal = torch.tril(torch.ones(2, 2, dtype=torch.bool))[None]  # (B, Tq, Tk)
    assert head_divergence(weights, torch.ones(1, 2, dtype=torch.bool), causal) == pytest.approx(LOG2, abs=1e-6)


def test_divergences_of_a_model_per_kind_and_layer(make_cfg) -> None:
    model = Transformer(make_cfg(n_heads=4)).eval()
    src = torch.tensor([[3, 4, 5, 2], [6, 2, 0, 0]])
    tgt_in = torch.tensor([[1, 7, 8, 9], [1, 10, 0, 0]])
    found = divergences(model, src, tgt_in, pad_id=0)
    assert set(found) == set(KINDS)
    for values in found.values():
        assert len(values) == 2 and all(0.0 <= v <= LOG2 + 1e-6 for v in values)


def test_quick_run(tmp_path) -> None:
    run_experiments(["heads"], tmp_path, seeds=1, quick=True)
    result = json.loads((tmp_path / "heads" / "result.json").read_text())
    assert [row["heads"] for row in result["table"]] == [1, 2, 4, 8]
    assert result["verdict"].split(":")[0] in ("Supported", "Not supported", "More nuanced than claimed")
    assert result["numbers"]["jsd_nats"]["1"]["cross"] == [None, None]
    assert all(0 <= s["mean"] <= LOG2 for s in result["numbers"]["jsd_nats"]["4"]["cross"])
    for figure in result["figures"]:
        assert (tmp_path / "heads" / figure).is_file()
    assert {"heads.png", "heads_cross_attention.png"} <= set(result["figures"])
