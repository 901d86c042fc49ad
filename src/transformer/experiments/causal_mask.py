"""The causal mask: the decoder must not see the outputs after t (§3.2.3).

Trained without the mask, the decoder's self-attention at position t reads the target token t + 1 it is asked
to predict: the training loss falls far below the masked model's, and the model has learnt nothing it can use
when it generates, where the future is not there to read. Both models generate by running the decoder again on
the prefix at every step (``greedy_by_recomputation``: the same procedure for both; ours caches, which a model
without the mask cannot use), and the masked one with our cached greedy search too.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..model import Transformer
from .common import Context, Result, differs, loss_band, range_bars, spread
from .task import SMALL, NumbersTask, as_batch, exact_match, train

TITLE = "The causal mask: no peeking at later outputs"
CLAIM = ("The decoder's self-attention must not see the positions after t: the prediction of token t may depend "
         "only on the tokens before it, as at generation time.")


def leakage(model: Transformer, src: torch.Tensor, tgt_in: torch.Tensor) -> float:
    """The largest change in the logits at positions < T - 1 when the last decoder input token changes (0 for a
    causal decoder). Shapes: src (B, S), tgt_in (B, T)."""
    changed = tgt_in.clone()
    last = tgt_in[:, -1]
    changed[:, -1] = torch.where(last == 3, torch.full_like(last, 4), torch.full_like(last, 3))
    with torch.no_grad():
        before, after = model(src, tgt_in), model(src, changed)
    return float((before[:, :-1] - after[:, :-1]).abs().max())


def run(ctx: Context) -> Result:
    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    trained = {}
    for causal in (True, False):
        trained[causal] = [train(task, task.config(SMALL, causal_mask=causal), seed) for seed in ctx.seeds]
        ctx.progress(f"causal_mask={causal}: final losses {[round(r.losses[-1], 3) for r in trained[causal]]}")
    final = {c: spread([sum(r.nlls[-20:]) / len(r.nlls[-20:]) for r in runs]) for c, runs in trained.items()}
    generated = {c: spread([exact_match(task, r.model, recompute=True) for r in runs]) for c, runs in trained.items()}
    cached = spread([exact_match(task, r.model) for r in trained[True]])
    batch = as_batch(task, 16)
    leaks = {c: spread([leakage(r.model, batch.src, batch.tgt_in) for r in runs]) for c, runs in trained.items()}
    _plot(ctx, trained, generated)

    table = [{"decoder self-attention": "causal (the paper)" if c else "no mask",
              "final training NLL": str(final[c]), "exact match, generating": str(generated[c]),
              "logit change at earlier positions": str(leaks[c])} for c in (True, False)]
    table[0]["exact match, generating"] += f"; cached search {cached}"
    lower = differs(final[False], final[True]) and final[False].mean < final[True].mean
    fails = differs(generated[False], generated[True]) and generated[False].mean < generated[True].mean
    word = "Supported" if lower and fails and leaks[True].high == 0 else "More nuanced than claimed"
    verdict = (f"{word}: without the mask the training NLL per token ends at {final[False]} against {final[True]} "
               "with it, "
               f"while generation gets {generated[False]} of the held-out numbers exactly right against "
               f"{generated[True]}; a change to a later target token moves earlier logits by up to "
               f"{leaks[False].high:.3g} without the mask and by {leaks[True].high:.3g} with it.")
    numbers = {"final_loss": {str(c): v for c, v in final.items()},
               "exact_match_generating": {str(c): v for c, v in generated.items()}, "exact_match_cached": cached,
               "leakage": {str(c): v for c, v in leaks.items()}, "config": task.config(SMALL).to_dict(),
               "steps": task.size.steps,
               "nll_curves": {str(c): [r.nlls for r in runs] for c, runs in trained.items()}}
    setup = (f"The numbers task (up to {task.size.max_number}), d_model {SMALL.d_model}, {SMALL.n_heads} heads, "
             f"2+2 layers, {task.size.steps} steps, label smoothing 0.1 (so the loss cannot reach 0), with and "
             f"without the causal mask in training; greedy generation on {task.size.n_test} held-out numbers, "
             "re-running the decoder on the prefix at every step for both models. NLL: -log P(reference) per target "
             "token in training (the label-smoothed loss has a floor of about 0.8 here). The leakage is measured on 16 "
             "training pairs by changing the last decoder input token.")
    return Result(CLAIM, setup, table, verdict, numbers)


def _plot(ctx: Context, trained, generated) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    for causal, color in ((True, "tab:blue"), (False, "tab:red")):
        loss_band(axes[0], [r.nlls for r in trained[causal]], "causal mask" if causal else "no mask", color)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training NLL per token (smoothed)")
    axes[0].set_title("Training: the unmasked decoder reads the answer")
    axes[0].legend()
    range_bars(axes[1], ["causal mask", "no mask"], [generated[True], generated[False]], ["tab:blue", "tab:red"])
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("exact match, generating")
    axes[1].set_title("Generation: the answer is not there")
    ctx.save(fig, "causal_mask")
