"""Depth: every sublayer has a residual connection and a normalisation (§3.1), which make deep stacks trainable.

Stacks of 2+2, 6+6 and 12+12 layers, with and without the residual connections (``residual=False``: the
sublayer's output replaces x), in the paper's post-norm order LayerNorm(x + Sublayer(x)) and in the pre-norm
order x + Sublayer(LayerNorm(x)) (``norm_first``):
(a) at initialisation, the norm of the gradient of each encoder and decoder layer's parameters, from one backward
pass of the label-smoothed loss on a batch of the numbers task (dropout off), and how much the encoder output
still differs between the positions of a sentence (pure attention stacks collapse to one vector);
(b) short training runs, and whether each converges: the stacks with residual connections at every depth, with
and without the learning-rate warmup; those without them at 12+12, with the warmup (``runs_to_train``).

"Without warmup" is the same schedule with its ramp removed: the peak learning rate from the first step until
``WARMUP``, then the same 1/sqrt(step) decay (``learning_rate``), so that only the first steps differ. (``noam_lr``
with warmup 1 and the peak matched would also decay from step 1, to 1/sqrt(warmup) of the warmed-up run's rate
after the ramp, a sixth for 40 steps: fewer steps at a useful rate, not only no ramp.)
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..config import TransformerConfig
from ..data.batching import Batch
from ..model import Transformer
from ..training.loss import label_smoothed_loss
from ..training.schedule import noam_lr
from .common import Context, Result, Spread, finite, loss_band, spread
from .task import SMALL, NumbersTask, Trained, as_batch, train_on

TITLE = "Depth: a residual connection and a normalisation around every sublayer"
CLAIM = ("Every sublayer has a residual connection and a normalisation, x -> LayerNorm(x + Sublayer(x)): they are "
         "what makes a deep stack of layers trainable.")

PAPER = (True, False)  # (residual, norm_first) of the paper
VARIANTS = (PAPER, (True, True), (False, False), (False, True))
COLORS = dict(zip(VARIANTS, ("tab:blue", "tab:green", "tab:red", "tab:orange")))
DEPTHS = (2, 6, 12)  # layers in the encoder and in the decoder; all variants are trained at the deepest
STEPS = 120  # training steps of one run (b)
WARMUP = 40  # steps of the warmup ramp; the peak learning rate is noam_lr(WARMUP, d_model, WARMUP)
BATCH = 16  # sentence pairs per training batch
GRAD_BATCH = 64  # sentence pairs of the one batch of (a)
SMOOTH = 20  # the final loss: the mean of the last SMOOTH steps' losses
ZERO_FLOOR = 1e-20  # where the gradient figure draws a gradient that is exactly 0 (log axis)


def label(residual: bool, norm_first: bool) -> str:
    order = "pre-norm" if norm_first else "post-norm"
    return f"{order}, {'residual' if residual else 'NO residual'}" + (" (paper)" if (residual, norm_first) == PAPER
                                                                        else "")


def layer_gradients(model: Transformer, batch: Batch) -> dict[str, list[float]]:
    """The norm of the gradient of each encoder and each decoder layer's parameters (all of them as one vector),
    from one backward pass of the per-token label-smoothed loss (epsilon 0.1) on ``batch``, in eval mode (no
    dropout). Returns {"encoder": [layer 1, ...], "decoder": [layer 1, ...]}, layer 1 nearest the input."""
    cfg = model.cfg
    model.eval().zero_grad(set_to_none=True)
    hidden = model.decode(batch.tgt_in, model.encode(batch.src), model.source_mask(batch.src))  # (B, T, D)
    sums = label_smoothed_loss(hidden, batch.tgt_out, model.output_weight, cfg.pad_id, 0.1, 0,
                               output_bias=model.output_bias)
    (sums.loss / sums.n_tokens).backward()

    def norm(layer: torch.nn.Module) -> float:
        grads = [p.grad.reshape(-1) for p in layer.parameters() if p.grad is not None]
        return float(torch.cat(grads).norm()) if grads else 0.0

    out = {"encoder": [norm(layer) for layer in model.encoder.layers],
           "decoder": [norm(layer) for layer in model.decoder.layers]}
    model.zero_grad(set_to_none=True)
    return out


def position_spread(model: Transformer, src: Tensor) -> float:
    """How much the encoder output differs between the positions of a sentence: |M - mean over positions of M|
    / |M| over each sentence's real positions, averaged over the batch (0: every position the same vector).
    Shapes: src (B, S)."""
    with torch.no_grad():
        memory = model.eval().encode(src)  # (B, S, D)
    real = (src != model.cfg.pad_id)[..., None].to(memory.dtype)  # (B, S, 1)
    mean = (memory * real).sum(1, keepdim=True) / real.sum(1, keepdim=True)  # (B, 1, D)
    deviation = ((memory - mean) * real).pow(2).sum((1, 2)).sqrt()  # (B,)
    return float((deviation / (memory * real).pow(2).sum((1, 2)).sqrt()).mean())


def learning_rate(step: int, d_model: int, warmup: int, ramp: bool = True, scale: float = 1.0) -> float:
    """The paper's schedule (``noam_lr``: a linear ramp to its peak at ``warmup``, then 1/sqrt(step)); without the
    ``ramp``, the peak rate from step 1 to ``warmup`` and the same decay after it."""
    return noam_lr(step if ramp else max(step, warmup), d_model, warmup, scale)


def train_run(task: NumbersTask, cfg: TransformerConfig, seed: int, steps: int, batch_size: int, warmup: int,
              ramp: bool = True, lr_scale: float = 1.0) -> Trained:
    """``task.train`` with the schedule ``learning_rate(step, d_model, warmup, ramp, lr_scale)``: the same recipe
    (Adam 0.9/0.98, label smoothing 0.1, the same batches and initialisation for a seed); with ``ramp`` the same
    run, loss for loss. A loss that is not finite ends training (its NaN is the last loss)."""
    schedule = lambda step: learning_rate(step, cfg.d_model, warmup, ramp, lr_scale)  # noqa: E731
    return train_on(task.batches(batch_size, seed), cfg, seed, steps, schedule)


def final_loss(losses: list[float], steps: int) -> float:
    """The mean of the last ``SMOOTH`` losses; NaN for a run that diverged (a loss not finite, or stopped early)."""
    if len(losses) < steps or not all(map(math.isfinite, losses)):
        return math.nan
    tail = losses[-SMOOTH:]
    return sum(tail) / len(tail)


def converged(values: list[float], threshold: float) -> int:
    """How many of the final losses ``values`` are below ``threshold`` (a NaN never is)."""
    return sum(math.isfinite(v) and v < threshold for v in values)


def _finite_spread(values: list[float]) -> Spread | None:
    kept = [v for v in values if math.isfinite(v)]
    return spread(kept) if kept else None


def _describe(values: list[float], threshold: float) -> str:
    """'2.1 (1.9-2.3); 3/3' (converged of all), the diverged runs counted."""
    s = _finite_spread(values)
    diverged = sum(not math.isfinite(v) for v in values)
    return (f"{s if s else 'diverged'}; {converged(values, threshold)}/{len(values)}"
            + (f", {diverged} diverged" if diverged and s else ""))


def runs_to_train(depths: tuple[int, ...]) -> list[tuple[int, bool, bool, bool]]:
    """(depth, residual, norm_first, ramp) of the runs (b) trains: the stacks with residual connections at every
    depth, with and without the warmup ramp; those without them at the deepest only, with the ramp (their
    failure is visible at initialisation, (a): no warmup can help a gradient that is 0)."""
    return [(depth, *variant, ramp) for depth in depths for variant in VARIANTS for ramp in (True, False)
            if variant[0] or (depth == depths[-1] and ramp)]


def run(ctx: Context) -> Result:
    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    depths = (1, 2, 3) if ctx.quick else DEPTHS
    deepest = depths[-1]
    steps = task.size.steps if ctx.quick else STEPS
    warmup = 4 if ctx.quick else WARMUP
    config = lambda depth, residual, norm_first: task.config(  # noqa: E731
        SMALL, n_encoder_layers=depth, n_decoder_layers=depth, residual=residual, norm_first=norm_first)

    # (a) at initialisation
    batch = as_batch(task, GRAD_BATCH)
    grads: dict[tuple[int, bool, bool], list[dict[str, list[float]]]] = {}
    spreads: dict[tuple[int, bool, bool], list[float]] = {}
    for depth in depths:
        for variant in VARIANTS:
            grads[(depth, *variant)], spreads[(depth, *variant)] = [], []
            for seed in ctx.seeds:
                torch.manual_seed(seed)
                model = Transformer(config(depth, *variant))
                grads[(depth, *variant)].append(layer_gradients(model, batch))
                spreads[(depth, *variant)].append(position_spread(model, batch.src))
    ctx.progress("(a) gradients at initialisation measured")
    _plot_gradients(ctx, depths, grads)

    # (b) training, with and without the warmup ramp
    threshold = 0.5 * math.log(len(task.vocab))  # half the loss of a uniform prediction, ln V
    trained = runs_to_train(depths)
    finals: dict[tuple[int, bool, bool, bool], list[float]] = {}
    curves: dict[tuple[int, bool, bool, bool], list[list[float]]] = {}
    for depth, residual, norm_first, ramp in trained:
        runs = [train_run(task, config(depth, residual, norm_first), seed, steps, BATCH, warmup, ramp)
                for seed in ctx.seeds]
        finals[depth, residual, norm_first, ramp] = [final_loss(r.losses, steps) for r in runs]
        curves[depth, residual, norm_first, ramp] = [r.losses for r in runs]
        ctx.progress(f"(b) {depth}+{depth} {label(residual, norm_first)}, {'warmup' if ramp else 'no warmup'}: "
                     f"final losses {[round(v, 3) for v in finals[depth, residual, norm_first, ramp]]}")
    _plot_training(ctx, curves, threshold, deepest)
    _plot_final(ctx, depths, finals, threshold)

    table = _table(depths, grads, spreads, finals, threshold)

    verdict = _verdict(depths, grads, spreads, finals, threshold, steps)
    peak = noam_lr(warmup, SMALL.d_model, warmup)
    key = lambda d, r, n: f"{d}+{d} {label(r, n)}"  # noqa: E731
    run_key = lambda d, r, n, w: f"{key(d, r, n)}, {'warmup' if w else 'no warmup'}"  # noqa: E731
    numbers = {
        "gradients_at_initialisation": {key(d, *v): {part: [spread([run[part][i] for run in grads[(d, *v)]])
                                                            for i in range(d)] for part in ("encoder", "decoder")}
                                        for d in depths for v in VARIANTS},
        "encoder_output_spread": {key(d, *v): spread(spreads[(d, *v)]) for d in depths for v in VARIANTS},
        "final_loss": {run_key(*t): [finite(x) for x in finals[t]] for t in trained},
        "converged": {run_key(*t): converged(finals[t], threshold) for t in trained},
        "threshold": threshold, "steps": steps, "warmup": warmup, "batch_size": BATCH, "peak_learning_rate": peak,
        "config": config(deepest, *PAPER).to_dict(),
    }
    setup = (f"The numbers task (up to {task.size.max_number}, vocabulary {len(task.vocab)}), d_model "
             f"{SMALL.d_model}, {SMALL.n_heads} heads, d_ff {SMALL.d_ff}, dropout {SMALL.dropout}, "
             f"{', '.join(f'{d}+{d}' for d in depths)} layers; four variants: residual connections on or off "
             "(off: the sublayer's output replaces x), post-norm (the paper's LayerNorm(x + Sublayer(x))) or pre-norm "
             "(x + Sublayer(LayerNorm(x)), and a final LayerNorm). (a) At initialisation, per seed: the norm of the "
             "gradient of each layer's parameters from one backward pass of the label-smoothed loss on the first "
             f"{GRAD_BATCH} training pairs, dropout off (table: means over seeds; an exact 0 is drawn at "
             f"{ZERO_FLOOR:g}), and the encoder output's spread over a sentence's positions, |M - mean_pos M| / |M|. "
             f"(b) Training, {steps} steps of {BATCH} pairs each, Adam 0.9/0.98, peak learning rate {peak:.3g} "
             f"(noam_lr at step {warmup}) reached by a linear warmup over {warmup} steps, or without warmup: at the "
             f"peak from step 1 to {warmup}, then the same 1/sqrt(step) decay. Trained: the stacks with residual "
             f"connections at every depth, with and without warmup; those without them at {deepest}+{deepest} only "
             "and with warmup only (to keep the run short; (a) shows why no schedule can help them). "
             f"Final loss: the mean of the last {SMOOTH} steps' training losses (label-smoothed); converged: below "
             f"{threshold:.2f}, half the loss of a uniform prediction (ln V); a run whose loss turns NaN counts as "
             "not converged.")
    return Result(CLAIM, setup, table, verdict, numbers)


def _table(depths, grads, spreads, finals, threshold: float) -> list[dict[str, str]]:
    """One row per depth and variant: gradients and spread at initialisation, final losses."""
    table = []
    for depth in depths:
        for variant in VARIANTS:
            runs = grads[(depth, *variant)]
            mean = lambda part, i, runs=runs: sum(r[part][i] for r in runs) / len(runs)  # noqa: E731
            row = {"layers": f"{depth}+{depth}", "model": label(*variant),
                   "grad norm at init: encoder layer 1": f"{mean('encoder', 0):.3g}",
                   "encoder last layer": f"{mean('encoder', -1):.3g}",
                   "decoder layer 1": f"{mean('decoder', 0):.3g}",
                   "decoder last layer": f"{mean('decoder', -1):.3g}",
                   "encoder output spread over positions": str(spread(spreads[(depth, *variant)])),
                   "final loss, warmup; converged": "not trained", "final loss, no warmup; converged": "not trained"}
            for ramp, column in ((True, "final loss, warmup; converged"), (False, "final loss, no warmup; converged")):
                if (depth, *variant, ramp) in finals:
                    row[column] = _describe(finals[(depth, *variant, ramp)], threshold)
            table.append(row)
    return table


def _verdict(depths, grads, spreads, finals, threshold: float, steps: int) -> str:
    deepest = depths[-1]
    n = len(next(iter(finals.values())))
    ok = lambda d, r, nf, w=True: converged(finals[d, r, nf, w], threshold)  # noqa: E731
    no_residual = [ok(deepest, False, nf) for nf in (False, True)]
    with_residual = max(ok(deepest, True, nf) for nf in (False, True))
    paper = {d: ok(d, *PAPER) for d in depths}
    prenorm = {d: ok(d, True, True) for d in depths}
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    decoder_first = {r: mean([g["decoder"][0] for g in grads[deepest, r, False]]) for r in (True, False)}
    collapse = max(spread(spreads[deepest, False, nf]).high for nf in (False, True))
    if max(no_residual) == n and with_residual == n:
        word = "Not supported"
    elif max(no_residual) == 0 and with_residual == n and all(v == n for v in paper.values()):
        word = "Supported"
    else:
        word = "More nuanced than claimed"
    loss = lambda r, nf: _finite_spread(finals[deepest, r, nf, True]) or "diverged"  # noqa: E731
    fmt = lambda counts: ", ".join(f"{d}+{d} {c}/{n}" for d, c in counts.items())  # noqa: E731
    deep = f"{deepest}+{deepest}"
    return (f"{word}: without residual connections the {deep} stacks converged in {max(no_residual)}/{n} seeds at "
            f"best (final loss {loss(False, False)} post-norm, {loss(False, True)} pre-norm; at initialisation "
            f"their encoder output is the same at every position to within {collapse:.1g} and the first decoder "
            f"layer's gradient is {decoder_first[False]:.2g} against {decoder_first[True]:.2g} with them); with "
            f"them, pre-norm converged in {steps} steps at {fmt(prenorm)} seeds (final loss {loss(True, True)} at "
            f"{deep}) and the paper's post-norm order at {fmt(paper)} with warmup ({loss(True, False)} at {deep}), "
            f"{fmt({d: ok(d, *PAPER, False) for d in depths})} without.")


def _plot_gradients(ctx: Context, depths, grads) -> None:
    fig, axes = plt.subplots(len(depths), 2, figsize=(11, 3.4 * len(depths)), squeeze=False)
    for row, depth in enumerate(depths):
        for col, part in enumerate(("encoder", "decoder")):
            ax = axes[row][col]
            layers = range(1, depth + 1)
            for variant in VARIANTS:
                runs = grads[(depth, *variant)]
                values = [[max(run[part][i], ZERO_FLOOR) for run in runs] for i in range(depth)]
                ax.plot(layers, [sum(v) / len(v) for v in values], "o-" if variant[0] else "s--",
                        color=COLORS[variant], label=label(*variant))
                ax.fill_between(layers, [min(v) for v in values], [max(v) for v in values], color=COLORS[variant],
                                alpha=0.15)
            ax.set_yscale("log")
            ax.set_xlabel(f"{part} layer (1 = nearest the input)")
            ax.set_ylabel("gradient norm of the layer")
            ax.set_title(f"{depth}+{depth} layers: {part}")
            ax.set_xticks(list(layers))
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Gradient per layer at initialisation (one batch; mean and range over seeds; 0 drawn at "
                 f"{ZERO_FLOOR:g})")
    ctx.save(fig, "gradients")


def _plot_training(ctx: Context, curves, threshold: float, depth: int) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, ramp in zip(axes, (True, False)):
        for variant in (v for v in VARIANTS if (depth, *v, ramp) in curves):
            loss_band(ax, curves[(depth, *variant, ramp)], label(*variant), COLORS[variant])
        ax.axhline(threshold, color="grey", linestyle=":", label=f"converged below {threshold:.2f}")
        ax.set_xlabel("step")
        ax.set_title(f"{depth}+{depth} layers, {'warmup' if ramp else 'no warmup'}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (smoothed)")
    fig.suptitle("Training the deepest stacks: mean and range over seeds")
    ctx.save(fig, "training")


def _plot_final(ctx: Context, depths, finals, threshold: float) -> None:
    fig, axes = plt.subplots(1, len(depths), figsize=(4.2 * len(depths), 4.2), sharey=True, squeeze=False)
    values = [v for vs in finals.values() for v in vs if math.isfinite(v)]
    top = max(values + [threshold])
    width = 0.38
    for ax, depth in zip(axes[0], depths):
        shown = [v for v in VARIANTS if (depth, *v, True) in finals]
        for i, variant in enumerate(shown):
            for k, ramp in enumerate((True, False)):
                if (depth, *variant, ramp) not in finals:
                    continue
                runs = finals[(depth, *variant, ramp)]
                s, x = _finite_spread(runs), i + (k - 0.5) * width
                if s is not None:
                    ax.bar(x, s.mean, width, color=COLORS[variant], alpha=1.0 if ramp else 0.55, edgecolor="black",
                           hatch="" if ramp else "//", yerr=[[s.mean - s.low], [s.high - s.mean]], capsize=3)
                diverged = len(runs) - (len(s.values) if s else 0)
                if diverged:
                    ax.text(x, (s.high if s else 0) + 0.03 * top, f"{diverged} NaN", ha="center", fontsize=8,
                            color="darkred")
        ax.axhline(threshold, color="grey", linestyle=":")
        ax.set_xticks(range(len(shown)), [label(*v).replace(" (paper)", "\n(paper)").replace(", ", "\n")
                                          for v in shown], fontsize=8)
        warmup_only = [v for v in shown if (depth, *v, False) not in finals]
        ax.set_title(f"{depth}+{depth} layers" + (" (NO residual: warmup only)" if warmup_only else ""))
    axes[0][0].set_ylabel(f"final training loss (mean of last {SMOOTH} steps)")
    axes[0][0].bar(0, 0, color="white", edgecolor="black", label="warmup")
    axes[0][0].bar(0, 0, color="white", edgecolor="black", hatch="//", label="no warmup")
    axes[0][0].plot([], [], color="grey", linestyle=":", label=f"converged below {threshold:.2f}")
    axes[0][0].legend(fontsize=8, loc="lower left", framealpha=1.0)
    fig.suptitle("Final training loss: mean and range over seeds")
    ctx.save(fig, "final_loss")
