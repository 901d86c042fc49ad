"""Peak memory of training, the ``peak`` part: each trainer of ``bench_train.TRAINERS`` in a fresh subprocess
(``python bench.py --memory-worker SPEC``, which runs ``memory_worker``), started by ``measure_peak``.

Linux only: it reads /proc/self/status and resets the kernel's high-water mark through /proc/self/clear_refs.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

import workload
from bench_models import n_params, select
from bench_timing import log
from bench_train import TRAINERS
from workload import SIZES

BENCH = Path(__file__).resolve().with_name("bench.py")


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _mmap_large_allocations(threshold: int = 16384) -> None:
    """mallopt(M_MMAP_THRESHOLD): from now on, glibc serves blocks >= threshold by mmap, unmapped on free."""
    with contextlib.suppress(OSError):  # not glibc: nothing to set
        ctypes.CDLL("libc.so.6").mallopt(-3, threshold)  # M_MMAP_THRESHOLD = -3


def memory_worker(spec: dict) -> dict:
    """Peak memory of training ``spec["impl"]`` (a label of ``TRAINERS``), in this (fresh) process.

    Method: glibc runs with MALLOC_MMAP_THRESHOLD_=16384 (and mallopt, the same), so every tensor buffer of
    16 KiB or more is its own mmap, returned to the OS when freed: the resident set then follows the live
    tensors instead of glibc's retained heap. A throwaway toy-size model of the same implementation first
    takes one step, so that lazy imports, thread pools and kernel set-up are not counted. After one
    warm-up pass (Adam state allocated, grads dropped) the kernel's high-water mark VmHWM is reset
    (``echo 5 > /proc/self/clear_refs``) and one pass over the batches runs.
    step_mb = VmHWM - VmRSS before that pass: gradients, activations, temporaries.
    state_mb = growth of anonymous resident memory (RssAnon, so library code paged in on first use
    does not count) from before the model was built to before that pass: parameters and Adam state,
    expected 12 bytes a parameter (state_expected_mb). total_mb = state_mb + step_mb.
    """
    torch.set_num_threads(spec["threads"])
    _mmap_large_allocations()
    size, build = spec["size"], TRAINERS[spec["impl"]].build
    batches = workload.training_batches(size["vocab"], spec["train_tokens"], spec["train_batches"])
    toy = SIZES["toy"]
    throwaway = build(toy, workload.training_batches(toy["vocab"], 100, 1))
    throwaway()
    del throwaway
    gc.collect()
    anon_start = _proc_status_kb("RssAnon")
    trainer = build(size, batches)
    trainer()
    trainer.release()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    anon_before, rss_before = _proc_status_kb("RssAnon"), _proc_status_kb("VmRSS")
    trainer()
    step_kb = _proc_status_kb("VmHWM") - rss_before
    params = n_params(trainer.model)
    return {"step_mb": step_kb / 1024, "state_mb": (anon_before - anon_start) / 1024,
            "total_mb": (anon_before - anon_start + step_kb) / 1024, "params": params,
            "state_expected_mb": 12 * params / 2**20}


def measure_peak(impl: str, size: dict[str, int], args: argparse.Namespace) -> dict:
    """``memory_worker``'s answer for trainer ``impl``, from a fresh subprocess."""
    spec = {"impl": impl, "size": size, "train_tokens": args.train_tokens, "train_batches": args.train_batches,
            "threads": args.threads}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "16384", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, str(BENCH), "--memory-worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker for {impl} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_peak(size_name: str, args: argparse.Namespace, report: dict) -> None:
    """The ``peak`` part at one size: every selected trainer, one subprocess each."""
    impls, _ = select(TRAINERS, args.impls)
    for impl in impls:
        log(f"[{size_name}] peak memory: {impl.label}")
        peak = measure_peak(impl.label, SIZES[size_name], args)
        report["peak"].append({"size": size_name, "impl": impl.label, **peak})
