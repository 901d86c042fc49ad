"""Our Transformer against its peers, side by side, in one process.

    python benchmarks/bench.py [--sizes tiny,base] [--parts train,decode,peak] [--reps 5] [--warmup 1]
                               [--json out.json] [--quick]

Parts (``--parts``; ``profile`` is extra, not in the default):
  train    target tokens/s of forward + backward + Adam step on token-bucket batches of ~4000 target tokens,
           with MFU against the machine's float32 matmul peak measured in the same run.
           Ours (also with the chunked loss, and with activation checkpointing), torch.nn.Transformer
           (wrapped), Hugging Face MarianMTModel.
  decode   sentences/s translating 64 sentences to exactly 32 tokens, beam 1 and beam 4. Ours (generate; also
           with int8 linear layers, ``Transformer.set_int8_inference``),
           HF generate (use_cache=True), CTranslate2 float32 and int8 (converted from the same Marian
           weights; in a worker process of its own, see ``ct2_worker``), our model exported to CTranslate2
           by our own exporter (``transformer export``; "ours->CT2", also in a worker), and nn.Transformer
           greedy without a cache (beam 1 only).
  peak     peak memory of training steps, each model in a fresh subprocess (see ``memory_worker``).
  profile  torch.profiler of our training step and our greedy / beam-4 decoding: top ops by self CPU time.

Timing is interleaved (A B C, C B A, ...) so that every implementation sees the same machine noise; each
figure is the median of ``--reps`` repetitions after ``--warmup`` ones ("best": the fastest repetition's
throughput, for a loaded machine, where a parallel region can wait on a descheduled thread). Results are
printed as a table and written as JSON (default benchmarks/results/latest.json).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import datetime
import gc
import importlib.metadata
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import peers  # noqa: E402
import workload  # noqa: E402
from transformer import Transformer, TransformerConfig  # noqa: E402
from workload import FLOP_FORMULA, PAD, SIZES, Batch  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "latest.json"
LABEL_SMOOTHING = 0.1
OURS = "ours"

# -- models ------------------------------------------------------------------------------------------


def build_ours(size: dict[str, int]) -> Transformer:
    cfg = TransformerConfig(
        src_vocab_size=size["vocab"], tgt_vocab_size=size["vocab"], d_model=size["d_model"],
        n_heads=size["n_heads"], d_ff=size["d_ff"], n_encoder_layers=size["n_layers"],
        n_decoder_layers=size["n_layers"], dropout=0.1, share_embeddings=True,
    )
    return Transformer(cfg)


def build_nn(size: dict[str, int]) -> peers.TorchTransformerPeer:
    return peers.TorchTransformerPeer(size["vocab"], size["d_model"], size["n_heads"], size["d_ff"], size["n_layers"])


def build_marian(size: dict[str, int]):
    return peers.build_marian(size["vocab"], size["d_model"], size["n_heads"], size["d_ff"], size["n_layers"])


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def optional_import(name: str):
    """The module, or None when it is not installed."""
    try:
        return __import__(name)
    except ImportError:
        return None


# -- training ------------------------------------------------------------------------------------------


def smoothed_loss(logits: torch.Tensor, target: torch.Tensor, pad: int) -> torch.Tensor:
    """Label-smoothed cross-entropy over the non-pad targets: logits (B, T, V), target (B, T)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=pad, label_smoothing=LABEL_SMOOTHING
    )


def chunked_loss_fn(compiled: bool = False) -> Callable | None:
    """Our chunked loss (``transformer.training.loss.label_smoothed_loss``) if present:
    (model, src, tgt_in, tgt_out) -> mean loss per target token. ``compiled``: its ``torch.compile``d softmax
    and gradient (``train.compile_loss``). None when the module, or that option, is absent."""
    try:
        from transformer.training.loss import label_smoothed_loss
    except ImportError:
        return None
    if compiled and "compiled" not in inspect.signature(label_smoothed_loss).parameters:
        return None
    options = {"compiled": True} if compiled else {}

    def loss(model: Transformer, src, tgt_in, tgt_out):
        hidden = model.decode(tgt_in, model.encode(src), model.source_mask(src))  # (B, T, D)
        sums = label_smoothed_loss(hidden, tgt_out, model.output_weight, PAD, LABEL_SMOOTHING, **options)
        return sums.loss / sums.n_tokens

    return loss


class Trainer:
    """One repetition = one optimizer step on each batch: zero_grad, loss, backward, Adam step.

    ``loss_fn(*inputs)`` computes the loss of one batch from that batch's prepared inputs.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable, inputs: list[tuple]):
        self.model = model.train()
        self.loss_fn = loss_fn
        self.inputs = inputs
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def __call__(self) -> None:
        for args in self.inputs:
            self.optimizer.zero_grad(set_to_none=True)
            self.loss_fn(*args).backward()
            self.optimizer.step()

    def release(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)


def build_trainer(impl: str, size: dict[str, int], batches: list[Batch]) -> Trainer:
    """A ready-to-run trainer of ``impl`` on ``batches`` (inputs converted to that model's ids)."""
    if impl == OURS:
        model = build_ours(size)
        return Trainer(model, lambda s, ti, to: smoothed_loss(model(s, ti), to, PAD),
                       [(b.src, b.tgt_in, b.tgt_out) for b in batches])
    if impl in ("ours, chunked loss", "ours, compiled loss", "ours, recompute"):  # recompute: also checkpointing
        model, loss = build_ours(size), chunked_loss_fn(compiled=impl == "ours, compiled loss")
        if impl == "ours, recompute":
            model.recompute_layers(True)
        return Trainer(model, lambda s, ti, to: loss(model, s, ti, to), [(b.src, b.tgt_in, b.tgt_out) for b in batches])
    if impl == "nn.Transformer":
        model = build_nn(size)
        return Trainer(model, lambda s, ti, to: smoothed_loss(model(s, ti), to, PAD),
                       [(b.src, b.tgt_in, b.tgt_out) for b in batches])
    if impl == "HF Marian":
        model, v = build_marian(size), size["vocab"]
        pad = peers.marian_pad(v)

        def loss(src, src_mask, tgt_in, tgt_mask, tgt_out):
            out = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt_in,
                        decoder_attention_mask=tgt_mask, use_cache=False)
            return smoothed_loss(out.logits, tgt_out, pad)

        inputs = [
            (peers.to_marian(b.src, v), (b.src != PAD).long(), peers.to_marian(b.tgt_in, v),
             (b.tgt_in != PAD).long(), peers.to_marian(b.tgt_out, v))
            for b in batches
        ]
        return Trainer(model, loss, inputs)
    raise ValueError(f"unknown implementation {impl!r}")


def training_impls(families: list[str]) -> tuple[list[str], dict[str, str]]:
    """Implementations to train (ours always), and why any asked for are missing."""
    impls, missing = [OURS], {}
    if chunked_loss_fn() is not None:
        impls.append("ours, chunked loss")
    else:
        missing["ours, chunked loss"] = "transformer.training.loss.label_smoothed_loss is not there"
    if "compiled" in families and chunked_loss_fn(compiled=True) is not None:
        impls.append("ours, compiled loss")
    elif "compiled" in families:
        missing["ours, compiled loss"] = "label_smoothed_loss has no compiled option"
    if "recompute" in families and chunked_loss_fn() is not None and hasattr(Transformer, "recompute_layers"):
        impls.append("ours, recompute")
    elif "recompute" in families:
        missing["ours, recompute"] = "Transformer.recompute_layers is not there"
    if "nn" in families:
        impls.append("nn.Transformer")
    if "hf" in families and optional_import("transformers") is not None:
        impls.append("HF Marian")
    elif "hf" in families:
        missing["HF Marian"] = "transformers is not installed"
    return impls, missing


# -- decoding ------------------------------------------------------------------------------------------


def decode_models(size: dict[str, int], tmp: str, families: list[str], threads: int, src: torch.Tensor) -> dict:
    """Every decoding implementation's model, in eval mode; CTranslate2's converted from the Marian one and
    loaded in a worker process of its own (``ct2_worker``: in this process it slowed PyTorch's decoding)."""
    models: dict = {OURS: build_ours(size).eval()}
    if "int8" in families:
        models["int8"] = copy.deepcopy(models[OURS]).set_int8_inference()
    if "nn" in families:
        models["nn"] = build_nn(size).eval()
    if {"hf", "ct2"} & set(families) and optional_import("transformers") is not None:
        models["marian"] = build_marian(size).eval()
        if "ct2" in families and optional_import("ctranslate2") is not None:
            from ct2_worker import Ct2Worker

            model_dir = peers.convert_to_ctranslate2(models["marian"], tmp)
            models["ct2"] = Ct2Worker(model_dir, peers.ctranslate2_tokens(src), threads)
    if "export" in families and optional_import("ctranslate2") is not None:
        from ct2_worker import Ct2Worker

        model_dir = peers.export_ours_to_ctranslate2(models[OURS], tmp)
        models["export"] = Ct2Worker(model_dir, peers.our_ctranslate2_tokens(src), threads)
    return models


def decoders(models: dict, src: torch.Tensor, length: int, beam: int, families: list[str]) -> dict[str, Callable]:
    """name -> callable translating all of ``src`` to exactly ``length`` tokens; returns tokens per sentence."""
    ours = models[OURS]
    runners: dict[str, Callable] = {
        OURS: lambda: ours.generate(src, beam_size=beam, max_len=length, min_len=length).size(1)
    }
    if "int8" in models:
        runners["ours int8"] = lambda: models["int8"].generate(src, beam_size=beam, max_len=length,
                                                                min_len=length).size(1)
    if "marian" in models and "hf" in families:
        marian = models["marian"]
        m_src, m_mask = peers.to_marian(src, marian.config.vocab_size), (src != PAD).long()

        def hf() -> int:
            with torch.inference_mode():
                out = marian.generate(input_ids=m_src, attention_mask=m_mask, num_beams=beam, do_sample=False,
                                      min_new_tokens=length, max_new_tokens=length, use_cache=True)
            return out.size(1) - 1  # minus the decoder start token

        runners["HF generate"] = hf
    for family, label in (("ct2", "CT2"), ("export", "ours->CT2")):
        if family in models:
            for compute_type in ("float32", "int8"):
                runners[f"{label} {compute_type}"] = (  # in its own process
                    lambda f=family, ct=compute_type: models[f].translate(ct, beam, length))
    if beam == 1 and "nn" in models:
        nn_peer = models["nn"]
        runners["nn.Transformer, no cache"] = lambda: nn_peer.greedy_no_cache(src, length).size(1)
    return runners


# -- timing ------------------------------------------------------------------------------------------


def interleaved(runners: dict[str, Callable], reps: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per call of each runner: warm-up calls, then ``reps`` rounds in alternating order."""
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


# -- memory ------------------------------------------------------------------------------------------


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
    """Peak memory of training, in this (fresh) process; run by ``measure_peak`` in a subprocess.

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
    size = spec["size"]
    batches = workload.training_batches(size["vocab"], spec["train_tokens"], spec["train_batches"])
    toy = SIZES["toy"]
    throwaway = build_trainer(spec["impl"], toy, workload.training_batches(toy["vocab"], 100, 1))
    throwaway()
    del throwaway
    gc.collect()
    anon_start = _proc_status_kb("RssAnon")
    trainer = build_trainer(spec["impl"], size, batches)
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
    spec = {"impl": impl, "size": size, "train_tokens": args.train_tokens, "train_batches": args.train_batches,
            "threads": args.threads}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "16384", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, __file__, "--memory-worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker for {impl} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- parts ----------------------------------------------------------------------------------------------


def run_train(size_name: str, args: argparse.Namespace, report: dict) -> None:
    size = SIZES[size_name]
    batches = workload.training_batches(size["vocab"], args.train_tokens, args.train_batches)
    tokens = sum(b.target_tokens for b in batches)
    flops = workload.training_flops(batches, size)
    impls, missing = training_impls(args.impls)
    trainers = {impl: build_trainer(impl, size, batches) for impl in impls}
    log(f"[{size_name}] train: {len(batches)} batches, shapes "
        f"{[(tuple(b.src.shape), b.tgt_in.size(1)) for b in batches]}, {tokens} target tokens per repetition")
    times = interleaved(trainers, args.reps, args.warmup)
    for impl in impls:
        add_row(report, size_name, "train", f"{tokens} tgt tok/rep", impl, times[impl], tokens, "tgt tok/s",
                flops=flops, params=n_params(trainers[impl].model))
    for impl, why in missing.items():
        report["skipped"].append({"size": size_name, "part": "train", "impl": impl, "why": why})
    del trainers
    gc.collect()


def run_peak(size_name: str, args: argparse.Namespace, report: dict) -> None:
    impls, _ = training_impls(args.impls)
    for impl in impls:
        log(f"[{size_name}] peak memory: {impl}")
        peak = measure_peak(impl, SIZES[size_name], args)
        report["peak"].append({"size": size_name, "impl": impl, **peak})


def run_decode(size_name: str, args: argparse.Namespace, report: dict) -> None:
    size = SIZES[size_name]
    src = workload.decode_sources(size["vocab"], args.decode_sentences)
    with tempfile.TemporaryDirectory() as tmp:
        models = decode_models(size, tmp, args.impls, args.threads, src)
        for beam in args.beams:
            runners = decoders(models, src, args.decode_len, beam, args.impls)
            lengths = {name: run() for name, run in runners.items()}  # also a first warm-up
            log(f"[{size_name}] decode beam {beam}: {src.size(0)} sentences, tokens out per sentence {lengths}")
            times = interleaved(runners, args.reps, max(args.warmup - 1, 0))
            for name in runners:
                add_row(report, size_name, "decode", f"beam {beam}", name, times[name], src.size(0), "sent/s",
                        out_tokens=lengths[name])
            del runners
        for family in ("ct2", "export"):
            if family in models:
                models[family].close()
        del models
        gc.collect()


def run_profile(size_name: str, args: argparse.Namespace, report: dict) -> None:
    from torch.profiler import ProfilerActivity, profile

    size = SIZES[size_name]
    batches = workload.training_batches(size["vocab"], args.train_tokens, 1)
    trainer = build_trainer(OURS, size, batches)
    trainer()
    model = build_ours(size).eval()
    src = workload.decode_sources(size["vocab"], args.decode_sentences)
    cases = {
        "train step": trainer,
        "greedy decode": lambda: model.generate(src, beam_size=1, max_len=args.decode_len, min_len=args.decode_len),
        "beam-4 decode": lambda: model.generate(src, beam_size=4, max_len=args.decode_len, min_len=args.decode_len),
    }
    for case, fn in cases.items():
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        averages = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in averages)
        top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:args.profile_rows]
        rows = [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count,
                 "share": e.self_cpu_time_total / total} for e in top]
        report["profile"].append({"size": size_name, "case": case, "total_self_cpu_ms": total / 1e3, "top": rows})
        print(f"\n== profile, ours, {size_name}, {case}: total self CPU {total / 1e3:.1f} ms ==")
        for r in rows:
            print(f"  {r['op'][:64]:<64} {r['self_cpu_ms']:10.1f} ms {100 * r['share']:5.1f}% {r['calls']:7d} calls")


# -- report ---------------------------------------------------------------------------------------------


def add_row(report: dict, size: str, part: str, case: str, impl: str, times: list[float], work: int, unit: str,
            **extra) -> None:
    median = statistics.median(times)
    report["results"].append({"size": size, "part": part, "case": case, "impl": impl, "unit": unit, "work": work,
                              "times_s": times, "median_s": median, "throughput": work / median, **extra})


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


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- command line ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="tiny,base", help=f"comma-separated, of {','.join(SIZES)}")
    p.add_argument("--parts", default="train,decode,peak", help="comma-separated, of train,decode,peak,profile")
    p.add_argument("--impls", default="ours,compiled,recompute,int8,nn,hf,ct2,export",
                   help="families to run (ours always): compiled = ours with the torch.compiled loss (train."
                   "compile_loss; training only), recompute = ours with activation checkpointing (training "
                   "only), int8 = ours with int8 linear layers (decoding only), nn = torch.nn.Transformer, "
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
    unknown = [s for s in args.sizes if s not in SIZES] + [
        s for s in args.parts if s not in ("train", "decode", "peak", "profile")] + [
        s for s in args.impls if s not in ("ours", "compiled", "recompute", "int8", "nn", "hf", "ct2", "export")]
    if unknown:
        p.error(f"unknown size(s), part(s) or implementation(s): {unknown}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    if args.memory_worker:
        print(json.dumps(memory_worker(json.loads(args.memory_worker))))
        return {}
    if args.table_from:
        report = json.loads(args.table_from.read_text())
        finish(report)
        print(table(report))
        return report
    transformers = optional_import("transformers") if {"hf", "ct2"} & set(args.impls) else None
    if transformers is not None:
        transformers.logging.set_verbosity_error()
    report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine_info(), "versions": versions(), "settings": {**vars(args), "json": str(args.json)},
              "lengths": workload.sentence_lengths()[1], "flop_formula": FLOP_FORMULA,
              "results": [], "peak": [], "profile": [], "skipped": []}
    load_start = os.getloadavg()
    peak_start = matmul_peak_gflops(args.matmul_n)
    for size_name in args.sizes:
        for part, run in (("train", run_train), ("peak", run_peak), ("decode", run_decode),
                          ("profile", run_profile)):
            if part in args.parts:
                run(size_name, args, report)
    peak_end = matmul_peak_gflops(args.matmul_n)
    # The higher of two medians: other load on a shared machine can only lower a measurement.
    report["matmul_peak_gflops_start_end"] = [peak_start, peak_end]
    report["matmul_peak_gflops"] = max(peak_start, peak_end)
    report["machine"]["loadavg_1_5_15_start_end"] = [load_start, os.getloadavg()]
    finish(report)
    print(f"\n{report['machine']['cpu']}, {report['machine']['cores']} cores, torch {torch.__version__}; "
          f"float32 matmul peak {report['matmul_peak_gflops']:.1f} GFLOP/s (n={args.matmul_n}); "
          f"{args.threads} threads; median of {args.reps} after {args.warmup} warm-up; "
          f"load average at start/end {load_start[0]:.1f}/{os.getloadavg()[0]:.1f}\nlengths: {report['lengths']}")
    print(table(report))
    print("\n" + FLOP_FORMULA)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    log(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
