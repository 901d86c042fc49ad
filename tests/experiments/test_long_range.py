"""The long-range experiment: its copy data, its scoring and its gradient measurement on cases with known answers,
and its quick run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from transformer.experiments import run_experiments
from transformer.experiments.long_range import (
    BOS,
    EOS,
    VOCAB,
    CopyTransformer,
    Seq2SeqLSTM,
    accuracy,
    build,
    copy_batch,
    gradient_by_distance,
    model_gradient,
    n_parameters,
    position_accuracy,
    transformer_config,
)


def test_copy_batches_are_seeded_and_their_targets_are_the_source_then_eos() -> None:
    src, tgt_in, tgt_out = copy_batch(torch.Generator().manual_seed(3), 5, 7)
    assert src.shape == (5, 7) and tgt_in.shape == tgt_out.shape == (5, 8)
    assert bool(((src >= 3) & (src < VOCAB)).all())  # symbols only: no pad, BOS or EOS
    assert torch.equal(tgt_out[:, :7], src) and bool((tgt_out[:, 7] == EOS).all())
    assert bool((tgt_in[:, 0] == BOS).all()) and torch.equal(tgt_in[:, 1:], src)  # the target shifted right
    again = copy_batch(torch.Generator().manual_seed(3), 5, 7)
    assert torch.equal(again[0], src) and not torch.equal(copy_batch(torch.Generator().manual_seed(4), 5, 7)[0], src)


def test_accuracy_of_an_oracle_and_of_one_wrong_token() -> None:
    src, tgt_in, tgt_out = copy_batch(torch.Generator().manual_seed(0), 4, 6)
    oracle = lambda s, t: F.one_hot(tgt_out, VOCAB).double()  # noqa: E731
    assert accuracy(oracle, src, tgt_in, tgt_out) == (1.0, 1.0)
    wrong = tgt_out.clone()
    wrong[1, 3] = 3 if int(wrong[1, 3]) != 3 else 4
    once_wrong = lambda s, t: F.one_hot(wrong, VOCAB).double()  # noqa: E731
    assert accuracy(once_wrong, src, tgt_in, tgt_out) == (0.75, pytest.approx(27 / 28, rel=1e-12))
    assert position_accuracy(once_wrong, src, tgt_in, tgt_out) == [1, 1, 1, 0.75, 1, 1, 1]


def test_gradient_by_distance_counts_distance_from_the_end_of_the_source() -> None:
    x = torch.randn(3, 10, 4, dtype=torch.float64)
    w = torch.randn(4, 5, dtype=torch.float64)
    last = gradient_by_distance(lambda e: e[:, -1] @ w, x)  # reads only the last position: distance 0
    assert float(last[0]) > 0 and bool((last[1:] == 0).all())
    first = gradient_by_distance(lambda e: e[:, 0] @ w, x)  # only the first: distance S - 1
    assert float(first[-1]) > 0 and bool((first[:-1] == 0).all())
    total = gradient_by_distance(lambda e: e.sum(1) @ w, x)  # every position alike: one value
    assert torch.allclose(total, total[0].expand(10), rtol=1e-12)
    assert torch.allclose(total, last[0].expand(10), rtol=1e-12)  # the same readout, so the same norm


def test_an_lstm_without_recurrence_or_memory_reaches_only_the_last_source_token() -> None:
    """With W_hh = 0 and the forget gate shut (input weights 0, bias -1e4: sigmoid is 0 exactly in float64),
    each encoder state depends on its own input only, and the decoder without attention sees only the last."""
    model = Seq2SeqLSTM(8, 6, attention=False)
    default = model_gradient(model, 12, 2, seed=0)
    assert bool((default > 0).all()) and float(default[-1]) < float(default[0])  # it reads all, fading
    h = 6
    with torch.no_grad():
        model.encoder.weight_hh_l0.zero_()
        model.encoder.weight_ih_l0[h:2 * h].zero_()  # gate order i, f, g, o
        model.encoder.bias_ih_l0[h:2 * h].fill_(-1e4)
        model.encoder.bias_hh_l0[h:2 * h].zero_()
    cut = model_gradient(model, 12, 2, seed=0)
    assert float(cut[0]) > 0 and bool((cut[1:] == 0).all())


def test_a_transformer_without_positions_reaches_every_source_position_alike() -> None:
    """No positional encoding and the same token everywhere: nothing tells the positions apart, so the decoder's
    first output depends on each alike; with the paper's positions each is still reached."""
    torch.manual_seed(0)
    model = CopyTransformer(dataclasses.replace(transformer_config(), positional="none")).double().eval()
    src = torch.full((2, 24), 7)
    tgt_in = torch.full((2, 1), BOS)
    profile = gradient_by_distance(lambda x: model.logits_from(x, src, tgt_in)[:, 0], model.embed_source(src))
    assert float(profile[0]) > 0 and torch.allclose(profile, profile[0].expand(24), rtol=1e-9)
    with_positions = model_gradient(build("transformer", 0), 24, 2, seed=0)
    assert bool((with_positions > 0).all())


def test_the_models_have_similar_numbers_of_parameters() -> None:
    counts = [n_parameters(build(kind, 0)) for kind in ("transformer", "lstm", "lstm+attention")]
    assert max(counts) < 1.15 * min(counts), counts


def test_quick_run_writes_its_result_figures_and_report(tmp_path) -> None:
    report = run_experiments(["long-range"], tmp_path, seeds=2, quick=True)
    result = json.loads((tmp_path / "long-range" / "result.json").read_text())
    assert result["verdict"].split(":")[0] in ("Supported", "Not supported", "More nuanced than claimed")
    assert result["table"] and result["seeds"] == [0, 1] and result["quick"] is True
    assert set(result["figures"]) == {"accuracy.png", "gradient.png", "positions.png", "training.png"}
    for figure in result["figures"]:
        path = tmp_path / "long-range" / figure
        assert path.is_file() and path.with_suffix(".svg").is_file()
    text = report.read_text()
    assert "## Long-range dependencies" in text and "Verdict: " in text
    assert "](long-range/gradient.png)" in text
