"""The ``profile`` part (not in the default parts): torch.profiler of our training step and of our greedy and
beam-4 decoding, the top ops by self CPU time, printed and added to the report's ``profile`` list.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

import workload
from bench_models import build_ours
from bench_report import OURS
from bench_train import TRAINERS
from workload import SIZES


def run_profile(size_name: str, args: argparse.Namespace, report: dict) -> None:
    size = SIZES[size_name]
    batches = workload.training_batches(size["vocab"], args.train_tokens, 1)
    trainer = TRAINERS[OURS].build(size, batches)
    trainer()
    model = build_ours(size).eval()
    src = workload.decode_sources(size["vocab"], args.decode_sentences)
    length = args.decode_len
    cases = {
        "train step": trainer,
        "greedy decode": lambda: model.generate(src, beam_size=1, max_len=length, min_len=length),
        "beam-4 decode": lambda: model.generate(src, beam_size=4, max_len=length, min_len=length),
    }
    for case, fn in cases.items():
        entry = _profile(fn, args.profile_rows)
        report["profile"].append({"size": size_name, "case": case, **entry})
        print(f"\n== profile, ours, {size_name}, {case}: total self CPU {entry['total_self_cpu_ms']:.1f} ms ==")
        for r in entry["top"]:
            print(f"  {r['op'][:64]:<64} {r['self_cpu_ms']:10.1f} ms {100 * r['share']:5.1f}% {r['calls']:7d} calls")


def _profile(fn: Callable[[], object], n_rows: int) -> dict:
    """One call of ``fn`` after a warm-up one, profiled: total self CPU time and the ``n_rows`` top ops."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    averages = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in averages)
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:n_rows]
    rows = [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count,
             "share": e.self_cpu_time_total / total} for e in top]
    return {"total_self_cpu_ms": total / 1e3, "top": rows}
