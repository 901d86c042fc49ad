"""The positions experiment: permutation equivariance, the encoding's distance dependence, the copy task, and
its quick run."""

from __future__ import annotations

import json

import torch

from transformer import Transformer
from transformer.experiments import run_experiments
from transformer.experiments.positions import copy_batches, distance_dependence, equivariance_error


def test_equivariance_is_exact_without_positions_and_breaks_with_them(make_cfg) -> None:
    src = torch.randint(3, 13, (2, 10), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    assert equivariance_error(Transformer(make_cfg(positional="none")).eval(), src, perm) < 1e-5
    assert equivariance_error(Transformer(make_cfg()).eval(), src, perm) > 1e-2


def test_the_encodings_dot_products_depend_on_the_distance_only() -> None:
    profile, deviation = distance_dependence(50, 64)
    assert deviation < 1e-4 and abs(float(profile[0, 0]) - 32.0) < 1e-4  # |PE(p)|^2 = d_model / 2


def test_copy_batches_copy() -> None:
    batch = copy_batches((2, 5), 8, seed=0)()
    before_eos = lambda row: row[: row.index(2)]  # noqa: E731
    lengths = set()
    for src, tgt in zip(batch.src.tolist(), batch.tgt_out.tolist()):
        assert before_eos(src) == before_eos(tgt) and all(3 <= t < 23 for t in before_eos(src))
        lengths.add(len(before_eos(src)))
    assert lengths <= {2, 3, 4, 5} and len(lengths) > 1


def test_quick_run(tmp_path) -> None:
    run_experiments(["positions"], tmp_path, seeds=1, quick=True)
    result = json.loads((tmp_path / "positions" / "result.json").read_text())
    assert [row["positions"] for row in result["table"]] == ["sinusoidal", "learned", "none"]
    assert result["numbers"]["equivariance_error_init"]["none"] < 1e-5
    assert (tmp_path / "positions" / "positions.png").is_file()
