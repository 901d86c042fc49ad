"""How the benchmark times: interleaved repetitions of every implementation, the float32 matmul peak that MFU
is measured against, and the progress log (stderr, seconds since start).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable

import torch

_T0 = time.perf_counter()


def interleaved(runners: dict[str, Callable[[], object]], reps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each runner: ``warmup`` calls of each, then ``reps`` rounds in alternating order
    (A B C, C B A, ...), so that every runner sees the same machine noise. The garbage collector is off
    inside a timed call."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - start)
            gc.enable()
    return times


def matmul_peak_gflops(n: int, reps: int = 10) -> float:
    """Median GFLOP/s of torch.matmul on float32 n x n squares (2 n^3 FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.matmul(a, b)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)
