"""Smoke test of benchmarks/bench.py: its machinery at a toy size, one repetition, in this process,
on one thread (two OpenMP threads on a loaded 2-core machine can be 20x slower at toy sizes).

Checks the JSON report's keys and that every number is positive; it asserts no timing. The peak-memory
measurement runs in-process here (``measure_peak`` normally starts one fresh subprocess per model).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_toy_run_writes_complete_json(tmp_path, monkeypatch):
    bench = _load_bench()
    measured = []

    def peak_in_process(impl, size, args):
        measured.append(impl)
        return bench.bench_memory.memory_worker(
            {"impl": impl, "size": size, "train_tokens": args.train_tokens, "train_batches": args.train_batches,
             "threads": args.threads}
        )

    monkeypatch.setattr(bench.bench_memory, "measure_peak", peak_in_process)
    out = tmp_path / "bench.json"
    bench.main([
        "--sizes", "toy", "--parts", "train,decode,peak", "--impls", "ours,recompute,nn", "--threads", "1",
        "--reps", "1", "--warmup", "0",
        "--train-tokens", "400", "--train-batches", "1", "--decode-sentences", "3", "--decode-len", "4",
        "--beams", "1,2", "--matmul-n", "64", "--json", str(out),
    ])
    report = json.loads(out.read_text())

    for key in ("date", "machine", "versions", "settings", "flop_formula", "matmul_peak_gflops", "results", "peak"):
        assert key in report, key
    assert report["machine"]["cores"] >= 1 and report["versions"]["torch"]
    assert report["matmul_peak_gflops"] > 0

    rows = {(r["part"], r["case"], r["impl"]) for r in report["results"]}
    assert {("decode", "beam 1", "ours"), ("decode", "beam 2", "ours"),
            ("decode", "beam 1", "nn.Transformer, no cache")} <= rows
    trained = {impl for part, _, impl in rows if part == "train"}
    assert trained == {"ours", "ours, chunked loss", "ours, recompute", "nn.Transformer"}
    for r in report["results"]:
        assert r["size"] == "toy"
        assert len(r["times_s"]) == 1 and r["median_s"] > 0 and r["throughput"] > 0 and math.isfinite(r["throughput"])
        assert r["ours_over_this"] > 0 and r["ours_over_this_paired"] > 0
        if r["part"] == "train":
            assert r["work"] > 0 and r["flops"] > 0 and r["mfu"] > 0
            # In-process, toy tensors can reuse heap freed by earlier parts, so these may be ~0 here.
            assert r["peak_step_mb"] >= 0 and r["peak_total_mb"] >= r["peak_step_mb"]
        else:
            assert r["out_tokens"] == 4  # the forced output length
    assert {p["impl"] for p in report["peak"]} == trained == set(measured)  # measured in this process
    assert all(p["params"] > 0 and p["state_expected_mb"] > 0 for p in report["peak"])


def test_bench_decodes_with_ctranslate2_in_its_own_process_the_peers_and_our_export(tmp_path):
    import pytest

    for package in ("transformers", "ctranslate2"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install -e '.[bench]')")
    bench = _load_bench()
    out = tmp_path / "bench.json"
    bench.main([
        "--sizes", "toy", "--parts", "decode", "--impls", "ours,int8,hf,ct2,export", "--threads", "1", "--reps", "1",
        "--warmup", "0", "--decode-sentences", "3", "--decode-len", "4", "--beams", "1,2", "--matmul-n", "64",
        "--json", str(out),
    ])
    rows = {(r["case"], r["impl"]): r for r in json.loads(out.read_text())["results"]}
    for beam in ("beam 1", "beam 2"):
        for impl in ("ours", "ours int8", "HF generate", "CT2 float32", "CT2 int8", "ours->CT2 float32",
                     "ours->CT2 int8"):
            assert rows[(beam, impl)]["out_tokens"] == 4, (beam, impl)  # the worker translated, to length 4
            assert rows[(beam, impl)]["throughput"] > 0


def test_bench_lists_an_implementation_whose_package_is_missing_as_skipped():
    _load_bench()  # puts benchmarks/ on sys.path
    from bench_models import Impl, select

    impls = {impl.label: impl for impl in (
        Impl("ours", "ours", build=print),
        Impl("peer", "hf", build=print, needs=("no_such_package_for_the_benchmark",)),
        Impl("other", "nn", build=print),
    )}
    chosen, skipped = select(impls, ["hf"])
    assert [impl.label for impl in chosen] == ["ours"]  # ours always; "other" was not asked for
    assert skipped == {"peer": "no_such_package_for_the_benchmark is not installed"}
