"""Our Transformer against its peers, side by side, in one process.

    python benchmarks/bench.py [--sizes tiny,base] [--parts train,decode,peak] [--reps 5] [--warmup 1]
                               [--json out.json] [--quick]

Parts (``--parts``; ``profile`` is extra, not in the default):
  train    target tokens/s of forward + backward + Adam step on token-bucket batches of ~4000 target tokens,
           with MFU against the machine's float32 matmul peak measured in the same run.
           Ours (also with the chunked loss, compiled or not, and with activation checkpointing), torch.nn.Transformer
           (wrapped), Hugging Face MarianMTModel.
  decode   sentences/s translating 64 sentences to exactly 32 tokens, beam 1 and beam 4. Ours (generate; also
           with int8 linear layers, ``Transformer.set_int8_inference``),
           HF generate (use_cache=True), CTranslate2 float32 and int8 (converted from the same Marian
           weights; in a worker process of its own, see ``ct2_worker``), our model exported to CTranslate2
           by our own exporter (``transformer export``; "ours->CT2", also in a worker), and nn.Transformer
           greedy without a cache (beam 1 only).
  peak     peak memory of training steps, each model in a fresh subprocess (see ``bench_memory``).
  profile  torch.profiler of our training step and our greedy / beam-4 decoding: top ops by self CPU time.

Timing is interleaved (A B C, C B A, ...) so that every implementation sees the same machine noise; each
figure is the median of ``--reps`` repetitions after ``--warmup`` ones ("best": the fastest repetition's
throughput, for a loaded machine, where a parallel region can wait on a descheduled thread). Results are
printed as a table and written as JSON (default benchmarks/results/latest.json).

This file holds the command line and ``main``; beside it: ``bench_train`` (trainers), ``bench_decode``
(decoders), ``bench_memory`` (the peak-memory subprocesses), ``bench_profile``, ``bench_timing`` (interleaved
timing, the matmul peak, the log), ``bench_report`` (rows, ratios, table, machine and versions),
``bench_models`` (model builders; ``Impl``, one entry of a part's dict of implementations), and ``peers``,
``workload``, ``ct2_worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import bench_memory  # noqa: E402
from bench_decode import DECODERS, run_decode  # noqa: E402
from bench_models import quiet_transformers  # noqa: E402
from bench_profile import run_profile  # noqa: E402
from bench_report import finish, header, new_report, table  # noqa: E402
from bench_timing import log, matmul_peak_gflops  # noqa: E402
from bench_train import TRAINERS, run_train  # noqa: E402
from workload import FLOP_FORMULA, SIZES  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
# part -> run(size_name, args, report), in the order they run at each size
PARTS = {"train": run_train, "peak": bench_memory.run_peak, "decode": run_decode, "profile": run_profile}
FAMILIES = {impl.family for impl in [*TRAINERS.values(), *DECODERS.values()]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="tiny,base", help=f"comma-separated, of {','.join(SIZES)}")
    p.add_argument("--parts", default="train,decode,peak", help="comma-separated, of train,decode,peak,profile")
    p.add_argument("--impls", default="ours,compiled,recompute,int8,bf16,nn,hf,ct2,export",
                   help="families to run (ours always): compiled = ours with the torch.compiled loss (train."
                   "compile_loss; training only), recompute = ours with activation checkpointing (training "
                   "only), int8 = ours with int8 linear layers (decoding only), bf16 = ours with bfloat16 linear "
                   "layers (decoding only, on CPUs with AMX or AVX512-BF16), nn = torch.nn.Transformer, "
                   "hf = Hugging Face Marian, ct2 = CTranslate2 (converted from Marian), export = our model "
                   "exported to CTranslate2 by `transformer export` (decoding only)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch (and CTranslate2) threads")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    p.add_argument("--quick", action="store_true", help="smoke run: tiny only, 2 repetitions, 1 training batch")
    p.add_argument("--train-tokens", type=int, default=4000, help="target tokens per training batch")
    p.add_argument("--train-batches", type=int, default=3, help="batches per repetition (short, middle, long)")
    p.add_argument("--decode-sentences", type=int, default=64)
    p.add_argument("--decode-len", type=int, default=32)
    p.add_argument("--beams", default="1,4")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--profile-rows", type=int, default=15)
    p.add_argument("--table-from", type=Path, help="print the table of an earlier JSON report, and run nothing")
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.train_batches = "tiny", 2, 1
    args.sizes = [s for s in args.sizes.split(",") if s]
    args.parts = [s for s in args.parts.split(",") if s]
    args.beams = [int(b) for b in args.beams.split(",") if b]
    args.impls = [s for s in args.impls.split(",") if s]
    unknown = ([s for s in args.sizes if s not in SIZES] + [s for s in args.parts if s not in PARTS]
               + [s for s in args.impls if s not in FAMILIES])
    if unknown:
        p.error(f"unknown size(s), part(s) or implementation(s): {unknown}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    if args.memory_worker:
        print(json.dumps(bench_memory.memory_worker(json.loads(args.memory_worker))))
        return {}
    if args.table_from:
        report = json.loads(args.table_from.read_text())
        finish(report)
        print(table(report))
        return report
    if {"hf", "ct2"} & set(args.impls):
        quiet_transformers()
    report = run_parts(args)
    print(f"\n{header(report)}")
    print(table(report))
    print("\n" + FLOP_FORMULA)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {args.json}")
    return report


def run_parts(args: argparse.Namespace) -> dict:
    """Every part asked for at every size, between two measurements of the matmul peak; the finished report."""
    report = new_report(args)
    load_start = os.getloadavg()
    peak_start = matmul_peak_gflops(args.matmul_n)
    for size_name in args.sizes:
        for part, run_part in PARTS.items():
            if part in args.parts:
                run_part(size_name, args, report)
    peak_end = matmul_peak_gflops(args.matmul_n)
    # The higher of two medians: other load on a shared machine can only lower a measurement.
    report["matmul_peak_gflops_start_end"] = [peak_start, peak_end]
    report["matmul_peak_gflops"] = max(peak_start, peak_end)
    report["machine"]["loadavg_1_5_15_start_end"] = [load_start, os.getloadavg()]
    finish(report)
    return report


if __name__ == "__main__":
    main()
