"""Positions: attention carries no order; the positional encoding adds it (§3.5).

(a) Without positions the encoder is permutation-equivariant: permuting the source permutes its outputs, to
float precision; with sinusoids (or learned positions) it is not.
(b) Sinusoidal vs learned vs none on the numbers task, where word order decides the number.
(c) Lengths beyond those trained on: copying random sequences, trained on lengths up to ``TRAIN_MAX``, tested
up to twice that: the paper's reason to prefer sinusoids (§3.5: "may allow the model to extrapolate").
(d) PE(p) . PE(q) depends only on |p - q|: the encoding's dot products are a function of the distance.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch

from ..config import Architecture, TransformerConfig
from ..data.batching import Batch, collate, source_ids
from ..decoding import DecodeOptions, search
from ..embeddings import sinusoidal_encoding
from ..model import Transformer
from .common import Context, Result, differs, range_bars, spread
from .task import SMALL, NumbersTask, exact_match, noam, train, train_on

TITLE = "Positional encoding: attention alone carries no order"
CLAIM = ("Self-attention treats its input as a set: without a positional encoding the model cannot tell word "
         "order; the sinusoids add it, and may let the model extrapolate to longer sequences than trained on.")
KINDS = ("sinusoidal", "learned", "none")
TRAIN_MAX = 16  # (c): copy sequences of 2..TRAIN_MAX tokens in training
TEST_LENGTHS = (8, 12, 16, 20, 24, 28, 32)
SYMBOLS = 20  # (c): tokens 3..3+SYMBOLS-1 (0, 1, 2 are pad, bos, eos)


def equivariance_error(model: Transformer, src: torch.Tensor, perm: torch.Tensor) -> float:
    """max |encode(src[:, perm]) - encode(src)[:, perm]|: 0 (to rounding) for a permutation-equivariant encoder."""
    with torch.no_grad():
        return float((model.encode(src[:, perm]) - model.encode(src)[:, perm]).abs().max())


def distance_dependence(n: int = 100, d_model: int = 128) -> tuple[torch.Tensor, float]:
    """The dot products PE(p) . PE(p + k), k = 0..n-1, from every p < n: (n, n), row p; and the largest
    difference between the rows (0: they depend on the distance k only)."""
    pe = sinusoidal_encoding(2 * n, d_model)  # (2n, D)
    dots = pe[:n] @ pe.T  # (n, 2n): row p, column q
    by_distance = torch.stack([dots[p, p : p + n] for p in range(n)])  # (n, n): row p, column k = q - p
    return by_distance, float((by_distance - by_distance[0]).abs().max())


def copy_batches(lengths: tuple[int, int], batch_size: int, seed: int) -> Callable[[], Batch]:
    """Batches of random sequences of SYMBOLS tokens, lengths in ``lengths`` (inclusive); the target is the
    source."""
    rng = random.Random(seed)

    def next_batch() -> Batch:
        rows = [[rng.randrange(3, 3 + SYMBOLS) for _ in range(rng.randint(*lengths))] for _ in range(batch_size)]
        return collate([(row, row) for row in rows])

    return next_batch


def copy_accuracy(model: Transformer, length: int, n: int, seed: int) -> float:
    """Per-token accuracy of copying ``n`` random sequences of ``length`` tokens (greedy; a missing or extra
    token counts as wrong)."""
    rng = random.Random(seed)
    rows = [[rng.randrange(3, 3 + SYMBOLS) for _ in range(length)] for _ in range(n)]
    src = torch.tensor([source_ids(row) for row in rows])
    with torch.no_grad():
        out = search(model, src, DecodeOptions(beam_size=1, max_len=length + 4))
    right = 0
    for row, tokens, size in zip(rows, out.tokens[:, 0].tolist(), out.lengths[:, 0].tolist()):
        right += sum(a == b for a, b in zip(row, tokens[:size]))
    return right / (n * length)


def run(ctx: Context) -> Result:
    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    src = torch.randint(3, len(task.vocab), (4, 12), generator=torch.Generator().manual_seed(0))
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    errors = {}
    for kind in KINDS:
        torch.manual_seed(0)
        errors[kind] = equivariance_error(Transformer(task.config(SMALL, positional=kind)).eval(), src, perm)
    ctx.progress(f"(a) permutation error at initialisation: {errors}")

    models, accuracy = {}, {}
    for kind in KINDS:
        runs = [train(task, task.config(SMALL, positional=kind), seed) for seed in ctx.seeds]
        models[kind] = runs
        accuracy[kind] = spread([exact_match(task, r.model) for r in runs])
        ctx.progress(f"(b) {kind}: exact match {accuracy[kind]}")
    trained_errors = {kind: equivariance_error(models[kind][0].model, src, perm) for kind in KINDS}

    lengths = TEST_LENGTHS[:3] if ctx.quick else TEST_LENGTHS
    copy = {kind: _copy_runs(ctx, kind, lengths) for kind in ("sinusoidal", "learned")}
    profile, deviation = distance_dependence()
    _plot(ctx, accuracy, copy, lengths, profile)
    table = [{"positions": kind, "permutation error at init": f"{errors[kind]:.1e}",
              "after training": f"{trained_errors[kind]:.1e}", "numbers exact match": str(accuracy[kind]),
              **{f"copy, length {n}": str(copy[kind][n]) if kind in copy else "" for n in lengths}}
             for kind in KINDS]
    longest = lengths[-1]
    sinusoidal, learned = copy["sinusoidal"][longest], copy["learned"][longest]
    extrapolates = differs(sinusoidal, learned) and sinusoidal.mean > learned.mean
    none, paper = accuracy["none"], accuracy["sinusoidal"]
    none_worse = differs(none, paper) and none.mean < paper.mean
    word = "Supported" if none_worse and errors["none"] < 1e-5 < errors["sinusoidal"] else "More nuanced than claimed"
    verdict = (f"{word}: without positions the encoder is permutation-equivariant (error {errors['none']:.0e} "
               f"against {errors['sinusoidal']:.0e} with sinusoids) and the numbers task reaches {none} exact "
               f"match against {paper} (sinusoidal) and {accuracy['learned']} (learned); copying at length {longest} "
               f"(trained up to {TRAIN_MAX}): sinusoidal {sinusoidal}, learned {learned} per-token accuracy"
               + ("" if extrapolates else ", so the sinusoids did not extrapolate better here") + ".")
    numbers = {"equivariance_error_init": errors, "equivariance_error_trained": trained_errors,
               "numbers_exact_match": accuracy, "copy_accuracy": {k: {str(n): v for n, v in c.items()}
                                                                  for k, c in copy.items()},
               "pe_dot_by_distance": profile[0].tolist(), "pe_dot_max_deviation_over_p": deviation,
               "config": task.config(SMALL).to_dict(), "steps": task.size.steps}
    setup = (f"(a) Encoders of d_model {SMALL.d_model} at initialisation and after training, 4 random sources of "
             f"12 tokens, one permutation. (b) The numbers task (up to {task.size.max_number}), {SMALL.d_model}-wide "
             f"2+2 layers, {task.size.steps} steps, greedy exact match on {task.size.n_test} held-out numbers. "
             f"(c) Copying random sequences of {SYMBOLS} symbols, trained on lengths 2-{TRAIN_MAX} ({_copy_steps(ctx)} "
             f"steps), per-token accuracy on 100 sequences of each test length. (d) The d_model = 128 table, "
             "positions 0-199.")
    return Result(CLAIM, setup, table, verdict, numbers)


def _copy_steps(ctx: Context) -> int:
    return 10 if ctx.quick else 400


def _copy_runs(ctx: Context, kind: str, lengths: tuple[int, ...]) -> dict[int, object]:
    architecture = Architecture(d_model=SMALL.d_model, n_heads=4, d_ff=256, n_encoder_layers=2, n_decoder_layers=2,
                                dropout=0.0, share_embeddings=True, positional=kind, max_positions=64)
    cfg = TransformerConfig.of(architecture, src_vocab_size=3 + SYMBOLS, tgt_vocab_size=3 + SYMBOLS)
    per_length: dict[int, list[float]] = {n: [] for n in lengths}
    for seed in ctx.seeds:
        batches = copy_batches((2, TRAIN_MAX), 64, seed)
        trained = train_on(batches, cfg, seed, _copy_steps(ctx), noam(cfg.d_model, 200))
        for n in lengths:
            per_length[n].append(copy_accuracy(trained.model, n, 20 if ctx.quick else 100, 1000 + n))
        ctx.progress(f"(c) {kind} seed {seed}: {[round(per_length[n][-1], 2) for n in lengths]}")
    return {n: spread(values) for n, values in per_length.items()}


def _plot(ctx: Context, accuracy, copy, lengths, profile) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    ax = axes[0]
    range_bars(ax, KINDS, [accuracy[k] for k in KINDS], ["tab:blue", "tab:orange", "tab:grey"])
    ax.set_ylim(0, 1)
    ax.set_ylabel("exact match (held-out numbers)")
    ax.set_title("(b) numbers task: mean and range over seeds")
    ax = axes[1]
    for kind, color in (("sinusoidal", "tab:blue"), ("learned", "tab:orange")):
        ax.plot(lengths, [copy[kind][n].mean for n in lengths], "o-", color=color, label=kind)
        ax.fill_between(lengths, [copy[kind][n].low for n in lengths], [copy[kind][n].high for n in lengths],
                        color=color, alpha=0.2)
    ax.axvspan(lengths[0], TRAIN_MAX, color="green", alpha=0.07, label="trained lengths")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("sequence length")
    ax.set_ylabel("per-token copy accuracy")
    ax.set_title("(c) beyond the trained lengths")
    ax.legend(fontsize=8)
    ax = axes[2]
    for p, style in ((0, "-"), (30, "--"), (70, ":")):
        ax.plot(range(profile.size(1)), profile[p].tolist(), style, label=f"from p = {p}")
    ax.legend(fontsize=8)
    ax.set_xlabel("distance q - p")
    ax.set_ylabel("PE(p) . PE(q)")
    ax.set_title("(d) the same curve from every p (d_model 128)")
    fig.suptitle("Positions")
    ctx.save(fig, "positions")
