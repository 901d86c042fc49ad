"""The position-wise feed-forward network (§3.3): does it earn its parameters?

In SMALL the FFN holds two thirds of an encoder layer's parameters (33k of 50k: 2 x 64 x 256 weights) and half
a decoder layer's. Taking it out (``feed_forward=False``) leaves a smaller model, so the comparison holds the
parameter count equal, in two ways:

- deeper (``DEEPER``): the parameters come back as more attention layers at the same d_model (the same heads,
  d_k and learning-rate schedule), each stack its own: the encoder's two FFNs weigh as much as four encoder
  self-attention layers, the decoder's two as two decoder layers (self and cross attention), so 2+2 layers
  with FFN face 6+4 layers without, 0.5% apart;
- wider (``WIDER``): 2+2 layers without FFN at d_model 96 (2.1% fewer), trained at the d_model-64 model's
  learning rate (``lr_scale`` sqrt(96 / 64) undoes the schedule's d_model^-0.5).

The uncompensated model (2+2 layers at d_model 64 without FFN, less than half the parameters) runs too, to tell
the FFN from its parameters.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import matplotlib.pyplot as plt

from ..config import Architecture, TransformerConfig
from ..model import Transformer
from .common import Context, Result, Spread, differs, loss_band, spread
from .task import SMALL, NumbersTask, exact_match, train

TITLE = "The position-wise feed-forward network"
CLAIM = ("After attention has gathered information from the other positions, the position-wise feed-forward network "
         "refines each position's representation (a non-linear transformation into a more useful space).")
DEEPER = dataclasses.replace(SMALL, feed_forward=False, n_encoder_layers=6, n_decoder_layers=4)
WIDER = dataclasses.replace(SMALL, feed_forward=False, d_model=96)
UNCOMPENSATED = dataclasses.replace(SMALL, feed_forward=False)


@dataclass(frozen=True)
class Model:
    label: str  # for the table and the legend
    short: str  # for the bar chart
    kind: str  # for the verdict
    architecture: Architecture
    lr_scale: float = 1.0
    same_parameters: bool = True  # compared with the FFN model at (about) its parameter count


WITH = Model("with FFN (the paper): 2+2 layers, d_model 64", "with FFN\n2+2, d 64", "paper", SMALL)
MODELS = (WITH,
          Model("no FFN, deeper: 6+4 layers, d_model 64", "no FFN\n6+4, d 64", "deeper", DEEPER),
          Model("no FFN, wider: 2+2 layers, d_model 96", "no FFN\n2+2, d 96", "wider", WIDER, math.sqrt(96 / 64)),
          Model("no FFN, fewer parameters: 2+2 layers, d_model 64", "no FFN\n2+2, d 64", "smaller",
                UNCOMPENSATED,
                same_parameters=False))
COLORS = ("tab:blue", "tab:red", "tab:orange", "tab:grey")


def parameters(architecture: Architecture, vocab_size: int) -> int:
    """The number of parameters of ``architecture`` with a joint vocabulary of ``vocab_size``."""
    cfg = TransformerConfig.of(architecture, src_vocab_size=vocab_size, tgt_vocab_size=vocab_size)
    return sum(p.numel() for p in Transformer(cfg).parameters())


def run(ctx: Context) -> Result:
    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    counts = {m.label: parameters(m.architecture, len(task.vocab)) for m in MODELS}
    trained = {}
    for m in MODELS:
        trained[m.label] = [train(task, task.config(m.architecture), seed, lr_scale=m.lr_scale) for seed in ctx.seeds]
        ctx.progress(f"{m.label}: {counts[m.label]:,} parameters, final losses "
                     f"{[round(r.losses[-1], 3) for r in trained[m.label]]}, "
                     f"{sum(r.seconds for r in trained[m.label]) / len(ctx.seeds):.1f} s a model")
    accuracy = {n: spread([exact_match(task, r.model) for r in runs]) for n, runs in trained.items()}
    final = {n: spread([sum(r.losses[-20:]) / len(r.losses[-20:]) for r in runs]) for n, runs in trained.items()}
    seconds = {n: spread([r.seconds for r in runs]) for n, runs in trained.items()}
    ratio = {m.label: counts[m.label] / counts[WITH.label] for m in MODELS}
    _plot(ctx, trained, accuracy, counts)

    table = [{"model": m.label, "parameters": f"{counts[m.label]:,} ({100 * (ratio[m.label] - 1):+.1f}%)",
              "exact match": str(accuracy[m.label]), "final training loss": str(final[m.label]),
              "seconds a model": f"{seconds[m.label].mean:.1f}"} for m in MODELS]
    verdict = _verdict(accuracy, final, ratio)
    numbers = {"parameters": counts, "parameter_ratio_to_ffn_model": ratio, "exact_match": accuracy,
               "final_loss": final, "seconds_per_model": seconds, "lr_scale": {m.label: m.lr_scale for m in MODELS},
               "configs": {m.label: task.config(m.architecture).to_dict() for m in MODELS},
               "steps": task.size.steps}
    setup = (f"The numbers task (up to {task.size.max_number}), {SMALL.n_heads} heads, {task.size.steps} steps each. "
             f"With the FFN: 2+2 layers, d_model {SMALL.d_model}, d_ff {SMALL.d_ff}. Without it "
             "(feed_forward=False), the parameter count made up in two ways: deeper, each stack getting back its "
             "FFNs' parameters as attention layers at the same d_model (the encoder's two FFNs weigh as much as "
             "four self-attention layers, the decoder's two as two decoder layers: 6+4 layers); and wider, d_model "
             "96 at 2+2 layers, trained at the d_model-64 learning rate (lr_scale sqrt(96/64)). For reference, 2+2 "
             f"layers at d_model 64 without FFN (less than half the parameters). Measured: greedy exact match on "
             f"{task.size.n_test} held-out numbers and the training loss (label-smoothed; final = mean of the last "
             "20 steps).")
    return Result(CLAIM, setup, table, verdict, numbers)


def _verdict(accuracy: dict[str, Spread], final: dict[str, Spread], ratio: dict[str, float]) -> str:
    """Supported: the FFN model translates better than every no-FFN model of its size and worse than none;
    not supported: some model without the FFN (of its size or smaller) does better and none worse."""
    ffn = accuracy[WITH.label]
    others = [m for m in MODELS if m is not WITH]
    beats = {m.label: differs(ffn, accuracy[m.label]) and ffn.mean > accuracy[m.label].mean for m in others}
    loses = {m.label: differs(ffn, accuracy[m.label]) and ffn.mean < accuracy[m.label].mean for m in others}
    described = "; ".join(f"{m.label} {accuracy[m.label]} ({100 * (ratio[m.label] - 1):+.1f}% parameters, final "
                          f"loss {final[m.label]})" for m in others)
    numbers = f"exact match with the FFN {ffn} (final loss {final[WITH.label]}); {described}"
    if all(beats[m.label] for m in others if m.same_parameters) and not any(loses.values()):
        return f"Supported: at the same parameter count the model with the FFN translates better: {numbers}."
    listed = lambda found: ", ".join(f"the {m.kind}" for m in others if found(m)) or "none"  # noqa: E731
    if any(loses.values()) and not any(beats.values()):
        return (f"Not supported on this task: models without the FFN translate better beyond the seeds' range "
                f"({listed(lambda m: loses[m.label])}): {numbers}.")
    return (f"More nuanced than claimed: against the models without it, the FFN model translates better than "
            f"{listed(lambda m: beats[m.label])}, worse than {listed(lambda m: loses[m.label])}, and within the "
            f"seeds' range of {listed(lambda m: not beats[m.label] and not loses[m.label])}: {numbers}.")


def _plot(ctx: Context, trained, accuracy, counts) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2, 1.2]})
    for m, color in zip(MODELS, COLORS):
        loss_band(axes[0], [r.losses for r in trained[m.label]], f"{m.label}: {counts[m.label]:,} parameters", color)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training loss (smoothed over 20 steps)")
    axes[0].set_title("Training loss: mean over seeds, band = range")
    axes[0].legend(fontsize=8)
    values = [accuracy[m.label] for m in MODELS]
    bars = axes[1].bar(range(len(MODELS)), [v.mean for v in values], yerr=[[v.mean - v.low for v in values],
                                                                          [v.high - v.mean for v in values]],
                       color=COLORS, capsize=4, tick_label=[m.short for m in MODELS])
    axes[1].bar_label(bars, [f"{v.mean:.3g}" for v in values], label_type="center", color="white", fontsize=9)
    axes[1].tick_params(axis="x", labelsize=8)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("exact match (held-out numbers)")
    axes[1].set_title("Translation: mean and range over seeds")
    fig.suptitle("The position-wise feed-forward network, with and without, at the same parameter count")
    ctx.save(fig, "feed_forward")
