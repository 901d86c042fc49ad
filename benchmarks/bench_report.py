"""The JSON report: its skeleton (date, machine, versions, settings), rows, skipped implementations, the ratios
against ours that ``finish`` computes, and the table printed from it (also from an earlier report's JSON,
``--table-from``).

A row is one implementation in one case of one part and size: its repetitions' times (``times_s``), median,
throughput = work / median, and extras (``flops``, ``params``, ``out_tokens``); ``finish`` adds ``best_throughput``,
``ours_over_this``, ``ours_over_this_paired``, ``mfu`` and the peak memory of training rows.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
from pathlib import Path

import torch

import workload
from workload import FLOP_FORMULA

OURS = "ours"  # the row every ratio is against


def new_report(args: argparse.Namespace) -> dict:
    """A report with no results yet: when, where, with what, and the settings of this run."""
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine_info(), "versions": versions(), "settings": {**vars(args), "json": str(args.json)},
            "lengths": workload.sentence_lengths()[1], "flop_formula": FLOP_FORMULA,
            "results": [], "peak": [], "profile": [], "skipped": []}


def add_row(report: dict, size: str, part: str, case: str, impl: str, times: list[float], work: int, unit: str,
            **extra) -> None:
    median = statistics.median(times)
    report["results"].append({"size": size, "part": part, "case": case, "impl": impl, "unit": unit, "work": work,
                              "times_s": times, "median_s": median, "throughput": work / median, **extra})


def add_skipped(report: dict, size: str, part: str, skipped: dict[str, str]) -> None:
    """Implementations asked for that could not run: label -> why."""
    for impl, why in skipped.items():
        report["skipped"].append({"size": size, "part": part, "impl": impl, "why": why})


def finish(report: dict) -> None:
    """Ratios against ours, MFU, and peak memory joined onto the training rows.

    ours_over_this = our median throughput / this one's (> 1: ours is faster). ours_over_this_paired = the
    median over rounds of this time / our time in the same round: the two ran back to back, so machine
    load that comes and goes cancels out better than in a ratio of medians.
    """
    peak_flops = report["matmul_peak_gflops"] * 1e9
    ours = {(r["size"], r["part"], r["case"]): r for r in report["results"] if r["impl"] == OURS}
    peaks = {(p["size"], p["impl"]): p for p in report["peak"]}
    for r in report["results"]:
        base = ours.get((r["size"], r["part"], r["case"]))
        r["best_throughput"] = r["work"] / min(r["times_s"])
        r["ours_over_this"] = base["throughput"] / r["throughput"] if base else None
        r["ours_over_this_paired"] = (
            statistics.median(t / t_ours for t, t_ours in zip(r["times_s"], base["times_s"])) if base else None
        )
        if "flops" in r:
            r["mfu"] = r["flops"] / r["median_s"] / peak_flops
        if r["part"] == "train" and (r["size"], r["impl"]) in peaks:
            r["peak_step_mb"] = peaks[(r["size"], r["impl"])]["step_mb"]
            r["peak_total_mb"] = peaks[(r["size"], r["impl"])]["total_mb"]


def header(report: dict) -> str:
    """Machine, matmul peak, settings and load: the lines printed above the table."""
    machine, settings = report["machine"], report["settings"]
    load_start, load_end = machine["loadavg_1_5_15_start_end"]
    return (f"{machine['cpu']}, {machine['cores']} cores, torch {report['versions']['torch']}; "
            f"float32 matmul peak {report['matmul_peak_gflops']:.1f} GFLOP/s (n={settings['matmul_n']}); "
            f"{settings['threads']} threads; median of {settings['reps']} after {settings['warmup']} warm-up; "
            f"load average at start/end {load_start[0]:.1f}/{load_end[0]:.1f}\nlengths: {report['lengths']}")


def table(report: dict) -> str:
    head = f"{'size':<5} {'part':<6} {'case':<19} {'implementation':<25} {'throughput':>18} {'ours/this':>9} " \
           f"{'peak MB step/total':>18} {'MFU':>6} {'median s':>9} {'best':>10}"
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        ratio = f"{r['ours_over_this_paired']:.2f}x" if r.get("ours_over_this_paired") else "-"
        peak = f"{_mb(r['peak_step_mb'])} / {_mb(r['peak_total_mb'])}" if "peak_step_mb" in r else "-"
        mfu = f"{100 * r['mfu']:.1f}%" if "mfu" in r else "-"
        lines.append(f"{r['size']:<5} {r['part']:<6} {r['case']:<19} {r['impl']:<25} "
                     f"{r['throughput']:>10.1f} {r['unit']:<7} {ratio:>9} {peak:>18} {mfu:>6} "
                     f"{r['median_s']:>9.3f} {r['best_throughput']:>10.1f}")
    trained = {(r["size"], r["impl"]) for r in report["results"] if r["part"] == "train"}
    for p in report["peak"]:
        if (p["size"], p["impl"]) not in trained:
            lines.append(f"{p['size']:<5} {'peak':<6} {'':<19} {p['impl']:<25} {'':>18} {'':>9} "
                         f"{_mb(p['step_mb']):>8} / {_mb(p['total_mb']):<7}")
    for s in report["skipped"]:
        lines.append(f"skipped: {s['size']} {s['part']} {s['impl']}: {s['why']}")
    lines.append("throughput = work / median time; ours/this = median over rounds of (this time / our time in the "
                 "same round), > 1: ours faster;\npeak MB = step (grads + activations) / total (+ weights and Adam "
                 "state); MFU at the median time; best = throughput of the fastest repetition.")
    return "\n".join(lines)


def _mb(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def machine_info() -> dict:
    cpu = "unknown"
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "platform": platform.platform()}


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("transformers", "ctranslate2", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
