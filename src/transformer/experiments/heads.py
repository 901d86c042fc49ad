"""Multi-head attention: several subspaces, each head free to attend to something else (§3.2.2).

1, 2, 4 and 8 heads at the same d_model (so the same parameters: the heads split the model's width between
them) on the numbers task: exact match and final training loss; and how differently the heads of one layer
attend: the mean pairwise Jensen-Shannon divergence between the heads' attention distributions (``head_divergence``),
for every layer and kind of attention (encoder self, decoder self, cross), on the held-out numbers, after
training and, for comparison, at initialisation (where the heads attend almost uniformly and alike).

The divergence is in nats (natural logarithm): 0 for heads that attend identically, log 2 ~ 0.693 for heads
that attend to disjoint keys.

Shapes: B batch, H heads, Tq queries, Tk keys, N query rows, K keys.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..data.batching import collate
from ..masks import causal_mask
from ..model import AttentionMaps, Transformer
from .common import Context, Result, Spread, differs, finite, spread
from .task import SMALL, NumbersTask, exact_match, train

TITLE = "Multi-head attention: several subspaces"
CLAIM = ("Multi-head attention maps Q, K and V into several subspaces by separate linear projections and attends "
         "in each, so that each head can attend to different things.")
HEADS = (1, 2, 4, 8)
KINDS = ("encoder", "decoder_self", "cross")  # the fields of AttentionMaps
KIND_NAMES = {"encoder": "encoder self", "decoder_self": "decoder self", "cross": "cross"}
SHOWN_HEADS = 4  # the model whose cross-attention is drawn, head by head
COMPARED = 4  # the multi-head model compared with one head for the verdict (SMALL's, the paper's shape)


def pairwise_jsd(p: Tensor) -> Tensor:
    """The mean Jensen-Shannon divergence (nats) over every pair of the H distributions of each row.

    JSD(P, Q) = (KL(P || M) + KL(Q || M)) / 2 with M = (P + Q) / 2: 0 for equal distributions, log 2 for
    disjoint ones. Shapes: p (N, H, K), rows summing to 1 -> (N,) float64; NaN where H < 2 (no pairs).
    """
    p = p.double()  # in float32, (a + b) / 2 of the smallest subnormal a rounds to 0, and a log(a / m) to inf
    h = p.size(1)
    if h < 2:
        return torch.full((p.size(0),), math.nan)
    a, b = p[:, :, None, :], p[:, None, :, :]  # (N, H, 1, K), (N, 1, H, K)
    m = (a + b) / 2  # (N, H, H, K)
    kl = lambda x: (torch.special.xlogy(x, x) - torch.special.xlogy(x, m)).sum(-1)  # noqa: E731  (N, H, H)
    jsd = (kl(a) + kl(b)) / 2  # (N, H, H), symmetric, 0 on the diagonal
    pairs = torch.triu(torch.ones(h, h, dtype=torch.bool), diagonal=1)  # (H, H): each unordered pair once
    return jsd[:, pairs].mean(-1)


def head_divergence(weights: Tensor, query_real: Tensor, allowed: Tensor) -> float:
    """The heads' mean pairwise Jensen-Shannon divergence (nats), averaged over the query rows that are real
    tokens and may attend to at least two keys (with one key every head's distribution is the same).

    Only ``allowed`` keys count: the rest (padding; later positions under the causal mask) are set to 0 and each
    row renormalised, so whatever a padded row or column holds leaves the result unchanged.
    Shapes: weights (B, H, Tq, Tk); query_real (B, Tq) bool; allowed (B, Tk) or (B, Tq, Tk) bool, True = a key
    the query may attend to. NaN with one head or no row to measure.
    """
    b, h, tq, tk = weights.shape
    allowed = allowed[:, None, :].expand(b, tq, tk) if allowed.dim() == 2 else allowed  # (B, Tq, Tk)
    rows = query_real & (allowed.sum(-1) >= 2)  # (B, Tq)
    if h < 2 or not bool(rows.any()):
        return math.nan
    kept = weights.double() * allowed[:, None]  # (B, H, Tq, Tk)
    kept = kept / kept.sum(-1, keepdim=True).clamp_min(1e-30)
    p = kept.permute(0, 2, 1, 3)[rows]  # (N, H, Tk)
    return float(pairwise_jsd(p).mean())


def divergences(model: Transformer, src: Tensor, tgt_in: Tensor, pad_id: int) -> dict[str, list[float]]:
    """``head_divergence`` of every layer (a list per kind of attention) on teacher-forced pairs.
    Shapes: src (B, S), tgt_in (B, T)."""
    with torch.no_grad():
        _, maps = model.forward_with_attention(src, tgt_in)
    src_real, tgt_real = src != pad_id, tgt_in != pad_id  # (B, S), (B, T)
    tgt_real[:, 0] = True  # the start token (which may be the pad id)
    causal = causal_mask(tgt_in.size(1))[0] & tgt_real[:, None, :]  # (B, T, T)
    masks = {"encoder": (src_real, src_real), "decoder_self": (tgt_real, causal), "cross": (tgt_real, src_real)}
    return {kind: [head_divergence(w, *masks[kind]) for w in getattr(maps, kind)] for kind in KINDS}


def test_pairs(task: NumbersTask) -> tuple[Tensor, Tensor, Tensor]:
    """The held-out numbers with their reference translations as one batch: src, tgt_in, tgt_out."""
    v = task.vocab
    pairs = [(ids, v.encode(ref)) for ids, ref in zip(task.test_ids, task.test_references)]
    batch = collate(pairs, v.pad_id, v.bos_id, v.eos_id)
    return batch.src, batch.tgt_in, batch.tgt_out


def run(ctx: Context) -> Result:
    task = NumbersTask(ctx.out / "task", quick=ctx.quick)
    pad = task.vocab.pad_id
    src, tgt_in, tgt_out = test_pairs(task)
    accuracy, final, jsd, jsd_init, seconds, shown = {}, {}, {}, {}, {}, None
    for h in HEADS:
        cfg = task.config(SMALL, n_heads=h)
        accs, losses, trained_div, init_div, times = [], [], [], [], []
        for seed in ctx.seeds:
            torch.manual_seed(seed)
            init_div.append(divergences(Transformer(cfg).eval(), src, tgt_in, pad))
            trained = train(task, cfg, seed)
            accs.append(exact_match(task, trained.model))
            losses.append(sum(trained.losses[-20:]) / len(trained.losses[-20:]))
            trained_div.append(divergences(trained.model, src, tgt_in, pad))
            times.append(trained.seconds)
            if h == SHOWN_HEADS and shown is None:
                shown = trained.model
        accuracy[h], final[h], seconds[h] = spread(accs), spread(losses), spread(times)
        jsd[h], jsd_init[h] = _per_layer(trained_div), _per_layer(init_div)
        ctx.progress(f"{h} heads: exact match {accuracy[h]}, final loss {final[h]}, "
                     f"{seconds[h].mean:.1f} s a model")
    overall = {h: _overall(jsd[h]) for h in HEADS}
    overall_init = {h: _overall(jsd_init[h]) for h in HEADS}
    example = _example(task, src, tgt_in, tgt_out)
    _plot_cross(ctx, task, shown, example)
    _plot_summary(ctx, accuracy, final, jsd, overall_init)

    n_layers = SMALL.n_encoder_layers
    table = []
    for h in HEADS:
        row = {"heads": h, "d_k per head": SMALL.d_model // h, "exact match": str(accuracy[h]),
               "final training loss": str(final[h])}
        for kind in KINDS:
            for layer in range(n_layers):
                row[f"JSD {KIND_NAMES[kind]}, layer {layer + 1}"] = _show(jsd[h][kind][layer])
        row["JSD mean, trained / at init"] = f"{_show(overall[h])} / {_show(overall_init[h])}"
        table.append(row)

    multi = [h for h in HEADS if h > 1]
    diverse = all(differs(overall[h], overall_init[h]) and overall[h].mean > overall_init[h].mean for h in multi)
    helps = differs(accuracy[COMPARED], accuracy[1]) and accuracy[COMPARED].mean > accuracy[1].mean
    heads_text = "; ".join(f"{h} heads {overall[h]}" for h in multi)
    accuracy_text = ", ".join(f"{h} heads {accuracy[h]}" for h in HEADS)
    if not diverse:
        verdict = (f"Not supported: after training the heads' attention maps are not more different from each other "
                   f"than at initialisation (mean pairwise JSD {heads_text}, against {_show(overall_init[COMPARED])} "
                   f"at initialisation for {COMPARED} heads; nats, at most log 2 = 0.693); "
                   f"exact match {accuracy_text}.")
    else:
        word = "Supported" if helps else "More nuanced than claimed"
        tail = (f"and {COMPARED} heads beat one beyond the seeds' range" if helps else
                f"but one head translates as well as {COMPARED}, within the seeds' range")
        verdict = (f"{word}: trained heads attend differently (mean pairwise JSD {heads_text} nats, at most "
                   f"log 2 = 0.693; {_show(overall_init[COMPARED])} at initialisation for {COMPARED} heads), "
                   f"{tail} (exact match {accuracy_text}).")
    numbers = {"exact_match": _keyed(accuracy), "final_loss": _keyed(final), "seconds_per_model": _keyed(seconds),
               "jsd_nats": {str(h): {k: [_json_spread(s) for s in v] for k, v in jsd[h].items()} for h in HEADS},
               "jsd_nats_at_init": {str(h): {k: [_json_spread(s) for s in v] for k, v in jsd_init[h].items()}
                                    for h in HEADS},
               "jsd_nats_mean": {str(h): _json_spread(overall[h]) for h in HEADS},
               "jsd_nats_mean_at_init": {str(h): _json_spread(overall_init[h]) for h in HEADS},
               "diverse": diverse, "multi_head_helps": helps, "example": example["source"],
               "config": task.config(SMALL).to_dict(), "steps": task.size.steps}
    setup = (f"The numbers task (up to {task.size.max_number}), d_model {SMALL.d_model}, d_ff {SMALL.d_ff}, "
             f"2+2 layers, with 1, 2, 4 or 8 heads (d_k = d_model / heads: the same parameters), "
             f"{task.size.steps} steps each; greedy exact match on {task.size.n_test} held-out numbers, and the final "
             "training loss (mean of the last 20 steps, label-smoothed). JSD: for each layer and kind of attention, "
             "the Jensen-Shannon divergence (nats; 0 = identical, log 2 = 0.693 = disjoint) between the attention "
             "distributions of every pair of heads, averaged over pairs and over the real query tokens of the "
             "held-out numbers with their reference translations (teacher-forced); padding is left out, and so "
             "are queries that can see only one key (the decoder's first position). 'At init': the same "
             "measurement on the untrained model of the same seed.")
    return Result(CLAIM, setup, table, verdict, numbers)


def _per_layer(runs: list[dict[str, list[float]]]) -> dict[str, list[Spread]]:
    """Per kind, per layer: the spread over seeds."""
    return {kind: [spread([r[kind][layer] for r in runs]) for layer in range(len(runs[0][kind]))] for kind in KINDS}


def _layers_mean(per_layer: list[Spread]) -> Spread:
    """Per seed, the mean over the layers (and kinds) given; the spread of those over seeds."""
    n = len(per_layer[0].values)
    return spread([sum(s.values[i] for s in per_layer) / len(per_layer) for i in range(n)])


def _overall(per_layer: dict[str, list[Spread]]) -> Spread:
    """Per seed, the mean over every layer and kind; the spread of those over seeds."""
    return _layers_mean([s for kind in KINDS for s in per_layer[kind]])


def _show(s: Spread) -> str:
    return "-" if math.isnan(s.mean) else str(s)


def _json_spread(s: Spread) -> dict | None:
    return None if math.isnan(s.mean) else {k: finite(v) if isinstance(v, float) else [finite(x) for x in v]
                                            for k, v in s.to_json().items()}


def _keyed(values: dict[int, Spread]) -> dict[str, Spread]:
    return {str(k): v for k, v in values.items()}


def _example(task: NumbersTask, src: Tensor, tgt_in: Tensor, tgt_out: Tensor) -> dict:
    """The held-out number with the most source tokens (the first such), unpadded."""
    pad = task.vocab.pad_id
    i = int((src != pad).sum(-1).argmax())
    s, t = int((src[i] != pad).sum()), int((tgt_out[i] != pad).sum())
    return {"source": task.test_sources[i], "src": src[i : i + 1, :s], "tgt_in": tgt_in[i : i + 1, :t],
            "tgt_out": tgt_out[i, :t]}


def _plot_cross(ctx: Context, task: NumbersTask, model: Transformer, example: dict) -> None:
    with torch.no_grad():
        _, maps = model.forward_with_attention(example["src"], example["tgt_in"])
    maps: AttentionMaps
    piece = task.vocab.id_to_piece
    xs = [piece(i) for i in example["src"][0].tolist()]
    ys = [piece(i) for i in example["tgt_out"].tolist()]
    layers, heads = len(maps.cross), maps.cross[0].size(1)
    fig, axes = plt.subplots(layers, heads, figsize=(2.9 * heads, 0.32 * len(ys) * layers + 1.6), squeeze=False)
    for layer in range(layers):
        for h in range(heads):
            ax = axes[layer][h]
            image = ax.imshow(maps.cross[layer][0, h].numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
            ax.set_xticks(range(len(xs)), xs, rotation=90, fontsize=7)
            ax.set_yticks(range(len(ys)), ys if h == 0 else [""] * len(ys), fontsize=7)
            ax.set_title(f"layer {layer + 1}, head {h + 1}", fontsize=9)
            if layer == layers - 1:
                ax.set_xlabel("source token (key)", fontsize=8)
        axes[layer][0].set_ylabel("target token predicted (query)", fontsize=8)
        fig.colorbar(image, ax=axes[layer][-1], label="attention weight")
    fig.suptitle(f"Cross-attention of each head ({heads}-head model, seed {ctx.seeds[0]}): "
                 f"'{example['source']}'", fontsize=10)
    ctx.save(fig, "heads_cross_attention")


def _plot_summary(ctx: Context, accuracy, final, jsd, overall_init) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    labels = [str(h) for h in HEADS]
    err = lambda values: [[v.mean - v.low for v in values], [v.high - v.mean for v in values]]  # noqa: E731
    for ax, values, ylabel, title in ((axes[0], accuracy, "exact match (held-out numbers)", "Translation"),
                                      (axes[1], final, "final training loss (label-smoothed)", "Training loss")):
        vals = [values[h] for h in HEADS]
        bars = ax.bar(range(len(HEADS)), [v.mean for v in vals], yerr=err(vals), capsize=4, color="tab:blue",
                      tick_label=labels)
        ax.bar_label(bars, [f"{v.mean:.3g}" for v in vals], label_type="center", color="white", fontsize=8)
        ax.set_xlabel("heads (d_model 64 split between them)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: mean and range over seeds")
    axes[0].set_ylim(0, 1)
    ax = axes[2]
    multi = [h for h in HEADS if h > 1]
    for kind, color in zip(KINDS, ("tab:blue", "tab:orange", "tab:green")):
        per_seed = [_layers_mean(jsd[h][kind]) for h in multi]
        ax.plot(multi, [s.mean for s in per_seed], "o-", color=color, label=f"{KIND_NAMES[kind]}, trained")
        ax.fill_between(multi, [s.low for s in per_seed], [s.high for s in per_seed], color=color, alpha=0.2)
    ax.plot(multi, [overall_init[h].mean for h in multi], "k--", label="all kinds, at initialisation")
    ax.axhline(math.log(2), color="grey", lw=0.8, ls=":", label="log 2 (disjoint heads)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(multi, [str(h) for h in multi])
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("heads")
    ax.set_ylabel("mean pairwise JSD between heads (nats)")
    ax.set_title("How differently the heads attend")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.suptitle("Multi-head attention: 1, 2, 4, 8 heads at d_model 64")
    ctx.save(fig, "heads")
