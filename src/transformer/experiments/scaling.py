"""Scaled dot-product attention: why divide by sqrt(d_k) (§3.2.1).

(a) At initialisation, for d_k from 16 to 1024: queries and keys as our model makes them (inputs of unit
variance per feature, Xavier-initialised W_Q and W_K), the spread of Q K^T with and without the scale, the
softmax's largest weight and its entropy, and the gradient that reaches Q and K through the softmax.
(b) The numbers task trained with one head of d_k = 128 (d_model 128), with and without the scale.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from torch import nn

from .common import Context, Result, differs, loss_band, spread
from .task import SMALL, NumbersTask, exact_match, train

TITLE = "Scaled dot-product attention: dividing by sqrt(d_k)"
CLAIM = ("Without dividing by sqrt(d_k), the dot products grow large with d_k, push the softmax into regions "
         "where it is nearly one-hot, and its gradients vanish.")
D_KS = (16, 32, 64, 128, 256, 512, 1024)
KEYS = 32  # keys per query


def at_initialisation(d_k: int, scaled: bool, seed: int, queries: int = 32) -> dict[str, float]:
    """Statistics of one head of width ``d_k`` at initialisation, over 8 x ``queries`` queries of ``KEYS`` keys:
    std of the softmax's input (Q K^T, divided by sqrt(d_k) or not), the mean largest softmax weight, mean
    entropy (nats), the share of queries whose largest weight is over 0.99 (``saturated``), and for a random
    linear readout of the output: ``softmax_gain``, the median over queries of |gradient at the softmax's input| /
    |gradient at its output| (how much gradient the softmax lets through), and ``grad_q``, the rms gradient
    reaching Q (that, times K, times the scale, if any)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(8, KEYS, d_k, generator=generator)  # unit variance per feature, as after LayerNorm
    w_q, w_k = torch.empty(d_k, d_k), torch.empty(d_k, d_k)
    torch.manual_seed(seed)
    nn.init.xavier_uniform_(w_q)
    nn.init.xavier_uniform_(w_k)
    q = (x[:, :queries] @ w_q).requires_grad_()  # (8, Tq, d_k)
    k = x @ w_k  # (8, KEYS, d_k)
    v = torch.randn(8, KEYS, d_k, generator=generator)
    scores = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(d_k) if scaled else 1.0)  # (8, Tq, KEYS)
    scores.retain_grad()
    weights = torch.softmax(scores, dim=-1)
    weights.retain_grad()
    out = weights @ v
    (out * torch.randn(out.shape, generator=generator)).sum().backward()
    rms = lambda t: float(t.norm() / t.numel() ** 0.5)  # noqa: E731
    row_gain = scores.grad.norm(dim=-1) / weights.grad.norm(dim=-1)  # (8, Tq): per query
    gain = float(row_gain.median())
    weights = weights.detach()
    entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
    return {"logit_std": float(scores.detach().std()), "max_weight": float(weights.max(-1).values.mean()),
            "entropy": float(entropy.mean()), "softmax_gain": gain, "grad_q": rms(q.grad),
            "saturated": float((weights.max(-1).values > 0.99).float().mean())}


def run(ctx: Context) -> Result:
    d_ks = D_KS[:3] if ctx.quick else D_KS
    init = {scaled: {d: [at_initialisation(d, scaled, seed) for seed in ctx.seeds] for d in d_ks}
            for scaled in (True, False)}
    mean = lambda scaled, d, key: sum(r[key] for r in init[scaled][d]) / len(ctx.seeds)  # noqa: E731
    ctx.progress("initialisation statistics done; training d_k = 128 with and without the scale")
    _plot_initialisation(ctx, d_ks, mean)

    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    wide = dict(d_model=32 if ctx.quick else 128, n_heads=1, d_ff=64 if ctx.quick else 256)
    trained = {}
    for scaled in (True, False):
        runs = []
        for seed in ctx.seeds:
            cfg = task.config(SMALL, scale_attention=scaled, **wide)
            runs.append(train(task, cfg, seed, steps=2 * task.size.steps))
            ctx.progress(f"scale={scaled} seed {seed}: loss {runs[-1].losses[-1]:.3f}")
        trained[scaled] = runs
    accuracy = {s: spread([exact_match(task, r.model) for r in runs]) for s, runs in trained.items()}
    final = {s: spread([sum(r.nlls[-20:]) / len(r.nlls[-20:]) for r in runs]) for s, runs in trained.items()}
    _plot_training(ctx, trained)

    table = [{"d_k": d, "logit std, scaled": f"{mean(True, d, 'logit_std'):.2f}",
              "logit std, unscaled": f"{mean(False, d, 'logit_std'):.2f}",
              "largest weight, scaled": f"{mean(True, d, 'max_weight'):.2f}",
              "largest weight, unscaled": f"{mean(False, d, 'max_weight'):.2f}",
              "saturated queries, unscaled": f"{mean(False, d, 'saturated'):.0%}",
              "softmax gradient gain, scaled": f"{mean(True, d, 'softmax_gain'):.2g}",
              "softmax gradient gain, unscaled": f"{mean(False, d, 'softmax_gain'):.2g}"} for d in d_ks]
    table += [{"d_k": f"trained, d_k={wide['d_model']}, {'scaled' if s else 'unscaled'}",
               "logit std, scaled": f"accuracy {accuracy[s]}", "logit std, unscaled": f"final training NLL {final[s]}"}
              for s in (True, False)]
    big = d_ks[-1]
    growth = mean(False, big, "logit_std") / mean(False, d_ks[0], "logit_std")
    vanished = mean(False, big, "softmax_gain") / mean(True, big, "softmax_gain")
    to_q = mean(False, big, "grad_q") / mean(True, big, "grad_q")
    trained_verdict = ("and trained with one head of d_k = {d}, the unscaled model's exact match {u} against {s} "
                       "scaled{within}").format(d=wide["d_model"], u=accuracy[False], s=accuracy[True],
                                                 within="" if differs(accuracy[False], accuracy[True])
                                                 else " (within the seeds' spread)")
    verdict = (f"{'Supported' if growth > 2 and vanished < 0.1 else 'More nuanced than claimed'}: at "
               f"initialisation the unscaled logits' spread grows {growth:.1f}x from d_k = {d_ks[0]} to {big} "
               f"(sqrt ratio {math.sqrt(big / d_ks[0]):.1f}x), {mean(False, big, 'saturated'):.0%} of the queries "
               f"put over 99% of their weight on one key, and the typical query's softmax passes {vanished:.2g}x "
               f"the gradient it passes with the scale (though the mean gradient reaching Q is {to_q:.2g}x larger, "
               f"carried by the unsaturated queries and the missing 1/sqrt(d_k)); {trained_verdict}.")
    numbers = {"initialisation": {("scaled" if s else "unscaled"): {str(d): init[s][d] for d in d_ks}
                                  for s in (True, False)},
               "trained": {("scaled" if s else "unscaled"): {"accuracy": accuracy[s], "final_nll": final[s],
                                                             "nll_curves": [r.nlls for r in trained[s]],
                                                             "seconds": [r.seconds for r in trained[s]]}
                           for s in (True, False)},
               "config": task.config(SMALL, **wide).to_dict(), "steps": 2 * task.size.steps}
    setup = (f"(a) One head at initialisation, d_k = {', '.join(map(str, d_ks))}: inputs N(0, 1) per feature, "
             f"W_Q and W_K Xavier-uniform as in our model, {KEYS} keys per query, 8 x 32 queries, per seed; "
             "gradients of a random linear readout of the attention output; the softmax's gradient gain is the "
             "median over queries of |dL/dscores| / |dL/dweights|. (b) The numbers task "
             f"(up to {task.size.max_number}), d_model {wide['d_model']} with ONE head (d_k = d_model), 2+2 layers, "
             f"{2 * task.size.steps} steps, with and without the scale; greedy exact match on {task.size.n_test} "
             "held-out numbers.")
    return Result(CLAIM, setup, table, verdict, numbers)


def _plot_initialisation(ctx: Context, d_ks: tuple[int, ...], mean) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for scaled, style in ((True, "o-"), (False, "s--")):
        label = "QK^T / sqrt(d_k)" if scaled else "QK^T (no scale)"
        axes[0].plot(d_ks, [mean(scaled, d, "logit_std") for d in d_ks], style, label=label)
        axes[1].plot(d_ks, [mean(scaled, d, "max_weight") for d in d_ks], style, label=label)
        axes[2].plot(d_ks, [max(mean(scaled, d, "softmax_gain"), 1e-12) for d in d_ks], style, label=label)
    axes[0].plot(d_ks, [math.sqrt(d) for d in d_ks], ":", color="grey", label="sqrt(d_k)")
    titles = ("spread (std) of the logits", f"largest softmax weight ({KEYS} keys)",
              "softmax: |grad in| / |grad out| (median query)")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d_k")
        ax.set_title(title)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    fig.suptitle("One attention head at initialisation")
    ctx.save(fig, "initialisation")


def _plot_training(ctx: Context, trained) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for scaled, color in ((True, "tab:blue"), (False, "tab:red")):
        loss_band(ax, [r.nlls for r in trained[scaled]], "scaled" if scaled else "unscaled", color)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training NLL per token (smoothed)")
    ax.set_title("Numbers task, one head of d_k = d_model: mean and range over seeds")
    ax.legend()
    ctx.save(fig, "training")
