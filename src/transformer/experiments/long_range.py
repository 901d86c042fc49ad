"""Long-range dependencies: a recurrent encoder-decoder against attention (the founding document's motivation;
the paper's §1 and §4, "maximum path length").

(a) Copying a sequence of random tokens, a task whose every output token depends on an input exactly as far back
as the sequence is long: our Transformer (pre-norm, ``transformer_config``), an LSTM encoder-decoder
(``torch.nn.LSTM``; the decoder starts from the encoder's last state, nothing else reaches it) and the same LSTM
with Luong's global attention ("general" score, no input feeding), of similar parameter counts, each trained for
the same number of Adam steps on the same seeded batches of mixed lengths, then scored on held-out sequences of
each length: whole-sequence exact match, per-token accuracy, and accuracy at each position of the longest.
(b) How much of the decoder's first output reaches each source position: the norm of the gradient of a random
linear readout of its logits with respect to each source embedding, against the distance from the end of the
source, at initialisation and after training (float64, so that a gradient that decays like 0.5^d stays
representable).

Shapes: B batch, S source length, T target length (S + 1), D embedding width, H LSTM hidden size, V vocabulary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import TransformerConfig
from ..model import Transformer
from .common import Context, Result, differs, loss_band, spread

TITLE = "Long-range dependencies: recurrence against attention"
CLAIM = ("Recurrent models (an RNN, an LSTM) pass each step's output on as the next step's input, so they forget "
         "over long sequences; attention reads the whole sequence at once.")

PAD, BOS, EOS = 0, 1, 2
SYMBOLS = 16  # random tokens 3 .. 18
VOCAB = 3 + SYMBOLS
KINDS = ("transformer", "lstm", "lstm+attention")
LABELS = {"transformer": "Transformer", "lstm": "LSTM", "lstm+attention": "LSTM + attention"}
COLORS = {"transformer": "tab:blue", "lstm": "tab:red", "lstm+attention": "tab:green"}
GOOD = 0.9  # exact match counted as "copies this length"
END = 8  # the gradient's "near" and "far" ends: the END distances nearest to and farthest from the output


@dataclass(frozen=True)
class Size:
    min_length: int  # training lengths: log-uniform in [min_length, max_length], one length a batch
    max_length: int
    eval_lengths: tuple[int, ...]
    steps: int
    batch_tokens: int  # source tokens a batch: batch_tokens // length sequences (at least 1)
    n_test: int  # held-out sequences per length
    gradient_length: int  # source length of the gradient measurement at initialisation
    gradient_batch: int


FULL = Size(min_length=4, max_length=128, eval_lengths=(8, 16, 32, 64, 128), steps=2000, batch_tokens=512,
            n_test=64, gradient_length=256, gradient_batch=8)
QUICK = Size(min_length=2, max_length=12, eval_lengths=(4, 12), steps=6, batch_tokens=32, n_test=8,
             gradient_length=16, gradient_batch=2)


# -- the task ------------------------------------------------------------------------------------------------


def copy_batch(generator: torch.Generator, batch_size: int, length: int) -> tuple[Tensor, Tensor, Tensor]:
    """``batch_size`` random sequences of ``length`` tokens to copy: src, the decoder input (BOS, then src) and
    the target (src, then EOS); no padding.

    Shapes: -> src (B, S), tgt_in (B, S + 1), tgt_out (B, S + 1), int64.
    """
    src = torch.randint(3, VOCAB, (batch_size, length), generator=generator)
    tgt_in = torch.cat([torch.full((batch_size, 1), BOS), src], dim=1)
    tgt_out = torch.cat([src, torch.full((batch_size, 1), EOS)], dim=1)
    return src, tgt_in, tgt_out


def training_length(generator: torch.Generator, size: Size) -> int:
    """A length drawn log-uniformly from [size.min_length, size.max_length] (as many short batches as long
    ones, per octave: the short ones teach the mechanism, the long ones test it)."""
    lo, hi = math.log(size.min_length), math.log(size.max_length + 1)
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return min(size.max_length, int(math.exp(lo + u * (hi - lo))))


# -- the models: one interface (embed_source, logits_from, forward) ------------------------------------------


class CopyTransformer(nn.Module):
    """``transformer.Transformer`` with the source embedding exposed, for the gradient measurement."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.model = Transformer(cfg)

    def twin(self) -> CopyTransformer:
        """A model of the same shape (fresh weights)."""
        return CopyTransformer(self.model.cfg)

    def embed_source(self, src: Tensor) -> Tensor:
        """(B, S) -> (B, S, D): E[x] * sqrt(D), before the positional encoding."""
        return self.model.src_embed(src)

    def logits_from(self, src_embedded: Tensor, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits from the embedded source: (B, S, D), (B, S), (B, T) -> (B, T, V)."""
        m = self.model
        src_mask = m.source_mask(src)
        memory = m.encoder(m.src_pos(src_embedded), src_mask)[0]  # (B, S, D)
        return m.project(m.decode(tgt_in, memory, src_mask))

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.model(src, tgt_in)


class Seq2SeqLSTM(nn.Module):
    """An LSTM encoder and an LSTM decoder that starts from the encoder's last (h, c). With ``attention``,
    Luong et al. (2015)'s global attention, "general" score, without input feeding: each decoder state h_t
    scores every encoder output, score(h_t, e_s) = h_t^T W_a e_s, and the logits come from
    tanh(W_c [context_t; h_t]). Without it, the encoder's last state is all the decoder learns of the source."""

    def __init__(self, d_embed: int, hidden: int, attention: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_embed, padding_idx=PAD)
        self.encoder = nn.LSTM(d_embed, hidden, batch_first=True)
        self.decoder = nn.LSTM(d_embed, hidden, batch_first=True)
        self.score = nn.Linear(hidden, hidden, bias=False) if attention else None
        self.combine = nn.Linear(2 * hidden, hidden) if attention else None
        self.out = nn.Linear(hidden, VOCAB)
        self.sizes = (d_embed, hidden, attention)

    def twin(self) -> Seq2SeqLSTM:
        """A model of the same shape (fresh weights)."""
        return Seq2SeqLSTM(*self.sizes)

    def embed_source(self, src: Tensor) -> Tensor:
        """(B, S) -> (B, S, D)."""
        return self.embed(src)

    def logits_from(self, src_embedded: Tensor, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits from the embedded source: (B, S, D), (B, S), (B, T) -> (B, T, V)."""
        encoded, state = self.encoder(src_embedded)  # (B, S, H), ((1, B, H), (1, B, H))
        decoded, _ = self.decoder(self.embed(tgt_in), state)  # (B, T, H)
        if self.score is None:
            return self.out(decoded)
        weights = torch.softmax(self.score(decoded) @ encoded.transpose(1, 2), dim=-1)  # (B, T, S)
        context = weights @ encoded  # (B, T, H)
        return self.out(torch.tanh(self.combine(torch.cat([context, decoded], dim=-1))))

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        return self.logits_from(self.embed_source(src), src, tgt_in)


def transformer_config() -> TransformerConfig:
    """A small Transformer (2 + 2 layers, d_model 64, 4 heads, d_ff 256), no dropout (the data never repeat), pre-norm
    (``norm_first``: in this budget the paper's post-norm had learnt to copy only length 8 where pre-norm copied 32)."""
    return TransformerConfig(d_model=64, n_heads=4, d_ff=256, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0,
                             norm_first=True, share_embeddings=True, src_vocab_size=VOCAB, tgt_vocab_size=VOCAB,
                             pad_id=PAD, bos_id=BOS, eos_id=EOS)


LSTM_SIZES = {"lstm": (64, 140), "lstm+attention": (64, 120)}  # (embedding width, hidden size): ~ the Transformer


def build(kind: str, seed: int) -> nn.Module:
    """A freshly initialised model of ``kind`` (one of ``KINDS``), its weights seeded by ``seed``."""
    torch.manual_seed(seed)
    if kind == "transformer":
        return CopyTransformer(transformer_config())
    d_embed, hidden = LSTM_SIZES[kind]
    return Seq2SeqLSTM(d_embed, hidden, attention=kind == "lstm+attention")


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- training and scoring ------------------------------------------------------------------------------------

LR, WARMUP, CLIP = 3e-3, 100, 1.0


def learning_rate(step: int, steps: int) -> float:
    """LR after a linear warmup of WARMUP steps, then down linearly to 0 at ``steps`` (the same for every model)."""
    return LR * min(step / WARMUP, (steps - step + 1) / max(1, steps - WARMUP))


@dataclass
class Trained:
    model: nn.Module
    losses: list[float]
    seconds: float


def train(kind: str, size: Size, seed: int) -> Trained:
    """``size.steps`` Adam updates (``learning_rate``; betas 0.9/0.98, gradients clipped at norm 1) of
    cross-entropy on copy batches of about ``size.batch_tokens`` source tokens; the batches depend on ``seed`` only,
    the same for every kind."""
    model = build(kind, seed).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.98), eps=1e-9)
    data = torch.Generator().manual_seed(10_000 + seed)
    losses, start = [], time.perf_counter()
    for step in range(1, size.steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, size.steps)
        length = training_length(data, size)
        src, tgt_in, tgt_out = copy_batch(data, max(1, size.batch_tokens // length), length)
        loss = F.cross_entropy(model(src, tgt_in).flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        losses.append(loss.item())
    return Trained(model.eval(), losses, time.perf_counter() - start)


def held_out(length: int, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """The held-out sequences of ``length``: the same for every model and seed (a generator of their own)."""
    return copy_batch(torch.Generator().manual_seed(20_000 + length), n, length)


def accuracy(logits_of: Callable[[Tensor, Tensor], Tensor], src: Tensor, tgt_in: Tensor, tgt_out: Tensor,
             ) -> tuple[float, float]:
    """(whole-sequence exact match, per-token accuracy) of teacher-forced argmax predictions, EOS included.
    Every teacher-forced argmax right is the same as greedy decoding writing the target exactly (each step's
    input is then the target's), so the exact match is greedy decoding's.

    Shapes: src (B, S), tgt_in and tgt_out (B, T); ``logits_of(src, tgt_in)`` -> (B, T, V).
    """
    with torch.no_grad():
        right = logits_of(src, tgt_in).argmax(-1) == tgt_out  # (B, T)
    return float(right.all(-1).double().mean()), float(right.double().mean())


def position_accuracy(logits_of: Callable[[Tensor, Tensor], Tensor], src: Tensor, tgt_in: Tensor, tgt_out: Tensor,
                      ) -> list[float]:
    """The share of sequences whose teacher-forced argmax is right at each target position (the last: EOS).

    Shapes: as ``accuracy``; -> T values.
    """
    with torch.no_grad():
        right = logits_of(src, tgt_in).argmax(-1) == tgt_out  # (B, T)
    return right.double().mean(0).tolist()


# -- the gradient measurement --------------------------------------------------------------------------------


def gradient_by_distance(first_output: Callable[[Tensor], Tensor], embedded: Tensor, seed: int = 0) -> Tensor:
    """The norm of the gradient of a random linear readout of ``first_output(x)`` with respect to each position
    of ``x``, averaged over the batch, indexed by distance from the end: entry d is source position S - 1 - d
    (0: the last source token, next to the decoder's first output; S - 1: the first).

    Shapes: embedded (B, S, D); first_output(x) -> (B, K), each row depending on its own x[b] only -> (S,).
    """
    x = embedded.detach().clone().requires_grad_()
    out = first_output(x)
    readout = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (out * readout.to(out.dtype)).sum().backward()
    return x.grad.norm(dim=-1).mean(0).flip(0)  # (S,)


def model_gradient(model: nn.Module, length: int, batch: int, seed: int) -> Tensor:
    """``gradient_by_distance`` of the logits of ``model``'s decoder's first output (after BOS), in float64, on
    ``batch`` random sources of ``length`` tokens (drawn from ``seed``). Shapes: -> (length,) float64."""
    twin = model.twin()
    twin.load_state_dict(model.state_dict())  # a copy: deepcopy cannot copy the prepacked inference weights
    model = twin.double().eval()
    src, tgt_in, _ = copy_batch(torch.Generator().manual_seed(30_000 + seed), batch, length)
    first = lambda x: model.logits_from(x, src, tgt_in[:, :1])[:, 0]  # noqa: E731
    return gradient_by_distance(first, model.embed_source(src), seed)


def ends(profile: Tensor) -> tuple[float, float]:
    """The mean of a gradient profile over its END nearest and its END farthest distances."""
    return float(profile[:END].mean()), float(profile[-END:].mean())


# -- the experiment ------------------------------------------------------------------------------------------


def run(ctx: Context) -> Result:
    size = QUICK if ctx.quick else FULL
    init = {k: [model_gradient(build(k, s), size.gradient_length, size.gradient_batch, s) for s in ctx.seeds]
            for k in KINDS}
    ctx.progress(f"gradients at initialisation done (length {size.gradient_length}); training")
    trained: dict[str, list[Trained]] = {k: [] for k in KINDS}
    for seed in ctx.seeds:
        for kind in KINDS:
            trained[kind].append(train(kind, size, seed))
            r = trained[kind][-1]
            ctx.progress(f"{kind} seed {seed}: final loss {r.losses[-1]:.3f} in {r.seconds:.0f} s")
    tests = {n: held_out(n, size.n_test) for n in size.eval_lengths}
    scores = {k: {n: [accuracy(r.model, *tests[n]) for r in trained[k]] for n in size.eval_lengths} for k in KINDS}
    exact = {k: {n: spread([e for e, _ in scores[k][n]]) for n in size.eval_lengths} for k in KINDS}
    per_token = {k: {n: spread([t for _, t in scores[k][n]]) for n in size.eval_lengths} for k in KINDS}
    last = size.eval_lengths[-1]
    by_position = {k: [position_accuracy(r.model, *tests[last]) for r in trained[k]] for k in KINDS}
    after = {k: [model_gradient(r.model, size.max_length, size.gradient_batch, s)
                 for r, s in zip(trained[k], ctx.seeds)] for k in KINDS}
    decay = {when: {k: spread([_log_ratio(p) for p in profiles[k]]) for k in KINDS}
             for when, profiles in (("init", init), ("trained", after))}
    _plot_accuracy(ctx, size, exact, per_token)
    _plot_gradients(ctx, size, init, after)
    _plot_positions(ctx, size, by_position)
    _plot_training(ctx, trained)

    params = {k: n_parameters(build(k, 0)) for k in KINDS}
    table = [{"measurement": f"exact match, length {n}", **{LABELS[k]: str(exact[k][n]) for k in KINDS}}
             for n in size.eval_lengths]
    table += [{"measurement": f"per-token accuracy, length {n}", **{LABELS[k]: str(per_token[k][n]) for k in KINDS}}
              for n in size.eval_lengths]
    table += [{"measurement": f"log10 gradient far/near, {what}", **{LABELS[k]: str(decay[when][k]) for k in KINDS}}
              for when, what in (("init", f"at initialisation (length {size.gradient_length})"),
                                 ("trained", f"trained (length {size.max_length}; its first output copies the "
                                             "farthest token)"))]
    table += [{"measurement": "parameters", **{LABELS[k]: params[k] for k in KINDS}},
              {"measurement": "training seconds", **{LABELS[k]: str(spread([r.seconds for r in trained[k]]))
                                                     for k in KINDS}}]
    numbers = {"exact_match": {k: {str(n): exact[k][n] for n in size.eval_lengths} for k in KINDS},
               "per_token": {k: {str(n): per_token[k][n] for n in size.eval_lengths} for k in KINDS},
               "accuracy_by_position": {"length": last, **by_position},
               "log10_gradient_far_over_near": decay,
               "gradient_by_distance": {"init": {k: [p.tolist() for p in init[k]] for k in KINDS},
                                        "trained": {k: [p.tolist() for p in after[k]] for k in KINDS}},
               "final_loss": {k: spread([_tail(r.losses) for r in trained[k]]) for k in KINDS},
               "parameters": params, "size": size.__dict__, "lr": LR, "warmup": WARMUP, "clip": CLIP,
               "transformer_config": transformer_config().to_dict(), "lstm_sizes": LSTM_SIZES}
    setup = (f"Copying random sequences of {SYMBOLS} symbols (then EOS). Each model is trained for {size.steps} "
             f"Adam steps (lr up to {LR} over {WARMUP} steps, then down linearly to 0; betas 0.9/0.98; clipping at 1) "
             f"on the same seeded "
             f"batches of {size.batch_tokens} source tokens, one length a batch, drawn log-uniformly from "
             f"{size.min_length} to {size.max_length}; exact match (whole sequence with EOS, = greedy decoding's) "
             f"and per-token accuracy on {size.n_test} held-out sequences of each length. Models: our Transformer "
             f"(2 + 2 layers, pre-norm, d_model 64, 4 heads, d_ff 256, sinusoidal positions, no dropout; "
             f"{params['transformer']:,} parameters), an LSTM encoder-decoder (embedding {LSTM_SIZES['lstm'][0]}, "
             f"hidden {LSTM_SIZES['lstm'][1]}; the decoder starts from the encoder's last state; "
             f"{params['lstm']:,}) and an LSTM with Luong's global attention (hidden "
             f"{LSTM_SIZES['lstm+attention'][1]}; {params['lstm+attention']:,}). Gradient: the norm of the "
             f"gradient of a random readout of the decoder's first output logits with respect to each source "
             f"embedding, against its distance from the end of the source, in float64, on {size.gradient_batch} "
             f"sources a seed; 'far/near' compares the {END} farthest distances with the {END} nearest.")
    return Result(CLAIM, setup, table, _verdict(size, exact, per_token, decay), numbers)


def _log_ratio(profile: Tensor) -> float:
    near, far = ends(profile)
    return math.log10(max(far, 1e-300) / near)


def _tail(losses: list[float]) -> float:
    tail = losses[-20:]
    return sum(tail) / len(tail)


def longest(exact: dict[int, object], lengths: tuple[int, ...]) -> int | None:
    """The longest of ``lengths`` up to which every exact match (mean over seeds) is >= GOOD; None: not even the
    shortest."""
    good = None
    for n in lengths:
        if exact[n].mean < GOOD:
            break
        good = n
    return good


def _verdict(size: Size, exact, per_token, decay) -> str:
    """From the numbers: "Supported" when, at the longest length the Transformer copies (exact match >= GOOD), the
    plain LSTM's exact match is lower beyond the seeds' spread, AND at initialisation the LSTM's gradient from the
    decoder's first output falls by more than 10^3 from the nearest to the farthest source positions (every seed)
    while the Transformer's stays within 10^1; "Not supported" when neither holds; otherwise "More nuanced"."""
    lengths, last = size.eval_lengths, size.eval_lengths[-1]
    reach = {k: longest(exact[k], lengths) for k in KINDS}
    copies = {k: f"not even length {lengths[0]}" if reach[k] is None else f"up to length {reach[k]}" for k in KINDS}
    t_init, l_init, a_init = (decay["init"][k] for k in KINDS)
    l_trained = decay["trained"]["lstm"]
    gradient_agrees = l_init.high < -3 and t_init.low > -1 and t_init.high < 1
    gradient = (f"at initialisation the gradient from the decoder's first output at the farthest of "
                f"{size.gradient_length} source positions is 10^{l_init.mean:.1f} of that at the nearest for the LSTM, "
                f"10^{t_init.mean:.1f} for the Transformer and 10^{a_init.mean:.1f} for the LSTM with attention")
    if l_trained.mean > -1:
        gradient += (f"; trained, the LSTM's no longer fades (10^{l_trained.mean:.1f} at length {size.max_length}: "
                     "its first output must copy the farthest token): its failure to copy is not a vanishing gradient "
                     "but the one fixed-size state that everything must pass through")
    else:
        gradient += f"; trained, the LSTM's still fades (10^{l_trained.mean:.1f} at length {size.max_length})"
    at_last = (f"at length {last} the exact match is {exact['transformer'][last]} for the Transformer, "
               f"{exact['lstm'][last]} for the LSTM and {exact['lstm+attention'][last]} with attention (per-token "
               f"{per_token['transformer'][last]}, {per_token['lstm'][last]}, {per_token['lstm+attention'][last]})")
    if reach["transformer"] is None:
        return (f"More nuanced than claimed: in {size.steps} steps the Transformer did not copy even length "
                f"{lengths[0]} (exact match {exact['transformer'][lengths[0]]}), so accuracy decides nothing; "
                f"{at_last}; {gradient}.")
    n = reach["transformer"]
    t, lstm = exact["transformer"][n], exact["lstm"][n]
    accuracy_agrees = differs(t, lstm) and lstm.mean < t.mean
    numbers = (f"the Transformer copies {copies['transformer']} (exact match {t}), where the plain LSTM's exact match "
               f"is {lstm}{'' if differs(t, lstm) else ' (within the seeds spread)'} (it copies {copies['lstm']}) and "
               f"the LSTM with attention copies {copies['lstm+attention']}; {at_last}; {gradient}")
    if accuracy_agrees and gradient_agrees:
        return f"Supported: {numbers}."
    if not accuracy_agrees and not gradient_agrees:
        return f"Not supported: {numbers}."
    return f"More nuanced than claimed: {numbers}."


# -- figures -------------------------------------------------------------------------------------------------


def _band(ax: plt.Axes, xs, runs: list[list[float]], kind: str) -> None:
    mean = [sum(v) / len(v) for v in zip(*runs)]
    ax.plot(xs, mean, "o-" if len(xs) < 20 else "-", color=COLORS[kind], label=LABELS[kind])
    ax.fill_between(xs, [min(v) for v in zip(*runs)], [max(v) for v in zip(*runs)], color=COLORS[kind], alpha=0.2)


def _plot_accuracy(ctx: Context, size: Size, exact, per_token) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    lengths = list(size.eval_lengths)
    axes[1].axhline(1 / SYMBOLS, color="grey", linestyle=":", label="chance (1 / symbols)")
    for ax, scores, title in ((axes[0], exact, "whole-sequence exact match"),
                              (axes[1], per_token, "per-token accuracy (teacher-forced)")):
        for kind in KINDS:
            _band(ax, lengths, [list(v) for v in zip(*(scores[kind][n].values for n in lengths))], kind)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("sequence length")
        ax.set_ylabel("share of held-out sequences" if ax is axes[0] else "share of tokens")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle(f"Copying random sequences after {size.steps} steps: mean and range over {len(ctx.seeds)} seed(s)")
    ctx.save(fig, "accuracy")


def _plot_gradients(ctx: Context, size: Size, init, after) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, profiles, title in ((axes[0], init, f"at initialisation, source length {size.gradient_length}"),
                                (axes[1], after, f"after training, source length {size.max_length}")):
        for kind in KINDS:
            runs = [p.clamp_min(1e-300).tolist() for p in profiles[kind]]
            _band(ax, list(range(len(runs[0]))), runs, kind)
        ax.set_yscale("log")
        ax.set_xlabel("distance from the end of the source (0: its last token)")
        ax.set_ylabel("gradient norm at the source embedding")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle("How much of the decoder's first output reaches each source position")
    ctx.save(fig, "gradient")


def _plot_positions(ctx: Context, size: Size, by_position) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    last = size.eval_lengths[-1]
    ax.axhline(1 / SYMBOLS, color="grey", linestyle=":", label="chance (1 / symbols)")
    for kind in KINDS:
        _band(ax, list(range(1, last + 2)), by_position[kind], kind)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(f"target position (1: the first source token; {last + 1}: EOS)")
    ax.set_ylabel("share of sequences right there")
    ax.set_title(f"Copying length {last}: accuracy at each position (teacher-forced)")
    ax.legend(fontsize=8)
    ctx.save(fig, "positions")


def _plot_training(ctx: Context, trained) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for kind in KINDS:
        loss_band(ax, [r.losses for r in trained[kind]], LABELS[kind], COLORS[kind])
    ax.set_xlabel("step")
    ax.set_yscale("log")
    ax.set_ylabel("training loss (cross-entropy, smoothed)")
    ax.set_title("Copying: training loss, mean and range over seeds")
    ax.legend()
    ctx.save(fig, "training")
