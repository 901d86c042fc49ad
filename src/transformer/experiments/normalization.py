"""LayerNorm, not BatchNorm (§3.1): each position normalised over its own features, never over the batch.

(a) Batch invariance: a sentence's encoding alone against the same sentence inside batches of other sentences
padded to longer and longer lengths, for each normalisation, in training mode (BatchNorm's batch statistics)
and in evaluation mode (its running estimates), on the trained models of (b).
(b) The numbers task trained with LayerNorm (the paper's), RMSNorm, BatchNorm (over batch and positions,
padding included: a drop-in) and none: exact match and loss curves.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..data.batching import source_ids
from ..model import Transformer
from ..normalization import SequenceBatchNorm
from .common import Context, Result, differs, loss_band, spread
from .task import SMALL, NumbersTask, exact_match, train

TITLE = "LayerNorm, not BatchNorm"
CLAIM = ("Normalise each position over its own features (LayerNorm), not over the batch: with padding and "
         "unrelated sentences in a batch, BatchNorm's statistics are unstable, LayerNorm's are the sentence's own.")
NORMS = ("layer", "rms", "batch", "none")
PADDING = (0, 4, 8, 16, 32, 64)


def batch_mode(model: Transformer, training: bool) -> Transformer:
    """``model`` in evaluation mode (no dropout), its BatchNorm layers in training mode if ``training``."""
    model.eval()
    for module in model.modules():
        if isinstance(module, SequenceBatchNorm):
            module.train(training)
    return model


def invariance_error(model: Transformer, sentence: list[int], others: list[list[int]], padding: int, pad_id: int,
                     eos_id: int) -> float:
    """max |encode(sentence) - encode(sentence inside a batch of ``others``)| over its positions, the batch
    padded ``padding`` positions beyond its longest sentence (one row of filler tokens sets that length)."""
    rows = [source_ids(sentence, eos_id)] + [source_ids(o, eos_id) for o in others]
    length = max(map(len, rows)) + padding
    batch = torch.full((len(rows) + 1, length), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        batch[i, : len(row)] = torch.tensor(row)
    batch[-1] = rows[0][0]  # a filler row that is all tokens: the others are padded to its length
    with torch.no_grad():
        alone = model.encode(torch.tensor([rows[0]]))[0]
        inside = model.encode(batch)[0, : len(rows[0])]
    return float((alone - inside).abs().max())


def run(ctx: Context) -> Result:
    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    trained = {}
    for norm in NORMS:
        trained[norm] = [train(task, task.config(SMALL, norm=norm), seed) for seed in ctx.seeds]
        ctx.progress(f"norm={norm}: final losses {[round(r.losses[-1], 3) for r in trained[norm]]}")
    accuracy = {n: spread([exact_match(task, batch_mode(r.model, False)) for r in runs]) for n, runs in trained.items()}
    final = {n: spread([sum(r.nlls[-20:]) / len(r.nlls[-20:]) for r in runs]) for n, runs in trained.items()}

    sentence, others = task.test_ids[0], task.test_ids[1:8]
    errors = {(norm, mode): [max(invariance_error(batch_mode(r.model, mode == "train"), sentence, others, p,
                                                  task.vocab.pad_id, task.vocab.eos_id) for r in trained[norm])
                             for p in PADDING]
              for norm in NORMS for mode in ("train", "eval")}
    _plot(ctx, trained, errors)
    table = [{"normalisation": norm, "exact match": str(accuracy[norm]), "final training NLL": str(final[norm]),
              "batch effect, train mode": f"{max(errors[norm, 'train']):.1e}",
              "batch effect, eval mode": f"{max(errors[norm, 'eval']):.1e}"} for norm in NORMS]
    batch_effect = max(errors["batch", "train"])
    layer_effect = max(max(errors["layer", "train"]), max(errors["layer", "eval"]))
    grows = errors["batch", "train"][-1] > errors["batch", "train"][0]
    accuracy_word = ("lower" if differs(accuracy["batch"], accuracy["layer"]) and
                     accuracy["batch"].mean < accuracy["layer"].mean else "not clearly different (within the seeds' "
                     "spread)" if not differs(accuracy["batch"], accuracy["layer"]) else "higher")
    word = "Supported" if batch_effect > 1e-3 > layer_effect and grows else "More nuanced than claimed"
    verdict = (f"{word}: in a padded batch of other sentences a sentence's encoding moves by up to "
               f"{batch_effect:.2g} with BatchNorm in training mode (from {errors['batch', 'train'][0]:.2g} with no "
               f"extra padding to {errors['batch', 'train'][-1]:.2g} with {PADDING[-1]}), by {layer_effect:.1g} with "
               f"LayerNorm; BatchNorm's exact match {accuracy['batch']} is {accuracy_word} than LayerNorm's "
               f"{accuracy['layer']} (RMSNorm {accuracy['rms']}, none {accuracy['none']}).")
    numbers = {"exact_match": accuracy, "final_nll": final, "padding": list(PADDING),
               "nll_curves": {n: [r.nlls for r in runs] for n, runs in trained.items()},
               "invariance_error": {f"{n}/{m}": v for (n, m), v in errors.items()},
               "config": task.config(SMALL).to_dict(), "steps": task.size.steps}
    setup = (f"(b) The numbers task (up to {task.size.max_number}), d_model {SMALL.d_model}, 2+2 layers, "
             f"{task.size.steps} steps of batches of 64 sentences, each normalisation in every sublayer; greedy "
             f"exact match on {task.size.n_test} held-out numbers (BatchNorm with its running estimates). (a) On "
             f"those models: one held-out number's encoding alone against inside a batch of 7 others and a filler "
             f"row, padded {', '.join(map(str, PADDING))} positions beyond the longest; the largest difference over "
             "the seeds. BatchNorm's statistics span every position of the batch, padding included.")
    return Result(CLAIM, setup, table, verdict, numbers)


def _plot(ctx: Context, trained, errors) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for norm in NORMS:
        loss_band(axes[0], [r.nlls for r in trained[norm]], norm)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("training NLL per token (smoothed)")
    axes[0].set_title("(b) numbers task: mean and range over seeds")
    axes[0].legend(title="normalisation")
    for norm in NORMS:
        for mode, style in (("train", "o-"), ("eval", "s--")):
            values = [max(v, 1e-9) for v in errors[norm, mode]]
            axes[1].plot(PADDING, values, style, label=f"{norm}, {mode} mode")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("extra padding positions in the batch")
    axes[1].set_ylabel("max |alone - in batch| (floor 1e-9)")
    axes[1].set_title("(a) a sentence's encoding, alone vs in a batch")
    axes[1].legend(fontsize=7, ncol=2)
    ctx.save(fig, "normalization")
