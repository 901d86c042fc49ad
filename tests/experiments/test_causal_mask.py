"""The causal-mask experiment: leakage measured on known cases, generation by recomputation, the quick run."""

from __future__ import annotations

import json

import torch

from transformer import DecodeOptions, Transformer, search
from transformer.experiments import run_experiments
from transformer.experiments.causal_mask import leakage
from transformer.experiments.task import greedy_by_recomputation


def test_without_the_mask_a_later_token_changes_earlier_logits(make_cfg) -> None:
    src, tgt = torch.randint(3, 13, (2, 6)), torch.randint(3, 13, (2, 5))
    assert leakage(Transformer(make_cfg()).eval(), src, tgt) == 0.0
    assert leakage(Transformer(make_cfg(causal_mask=False)).eval(), src, tgt) > 1e-4


def test_greedy_by_recomputation_equals_cached_greedy_for_a_causal_model(make_cfg) -> None:
    model = Transformer(make_cfg()).eval()
    src = torch.randint(3, 13, (3, 7), generator=torch.Generator().manual_seed(2))
    cached = search(model, src, DecodeOptions(beam_size=1, max_len=6)).tokens[:, 0]
    again = greedy_by_recomputation(model, src, 6)
    assert torch.equal(again[:, : cached.size(1)], cached) and bool((again[:, cached.size(1):] == 0).all())


def test_quick_run(tmp_path) -> None:
    run_experiments(["causal-mask"], tmp_path, seeds=1, quick=True)
    result = json.loads((tmp_path / "causal-mask" / "result.json").read_text())
    assert result["numbers"]["leakage"]["True"]["max"] == 0.0 and result["numbers"]["leakage"]["False"]["max"] > 0
