"""``train()``: the paper's training recipe (§5) from a prepared corpus to checkpoints in a run directory.

One optimizer step: ``accumulate`` token-bucketed batches -> autocast forward -> chunked label-smoothed loss
over the target tokens of the whole step (all processes) -> backward -> clip -> Adam -> learning rate of
§5.3 -> log -> validate and keep the best -> checkpoint. Everything that decides the trajectory (weights,
optimizer, data position, RNG states, best score) is in the checkpoint, so ``train(..., resume=True)`` after
a crash ends with the same weights, bit for bit, as a run that never stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..data import Batch, EncodedCorpus, PreparedData, TokenBatchSampler, Vocab, collate
from ..model import Transformer
from ..settings import RunConfig, TrainConfig, save_config
from . import checkpoint, distributed
from .distributed import World
from .loss import label_smoothed_loss
from .metrics import MetricsLog
from .schedule import cooldown, noam_lr, set_lr
from .validation import perplexity, validation_bleu, validation_loss

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training is; saved in every checkpoint."""

    step: int = 0  # optimizer updates done
    epoch: int = 0  # current pass over the data, from 0
    batch_in_epoch: int = 0  # batches of this epoch already used (by this rank)
    best_score: float | None = None  # best validation score so far (loss: lower is better; BLEU: higher)
    best_step: int = 0
    bad_evals: int = 0  # validations in a row without improvement
    stopped_early: bool = False
    elapsed_s: float = 0.0  # wall-clock seconds of training so far, over all resumptions
    out_of_time: bool = False  # train.max_minutes has run out

    def finished(self, cfg: TrainConfig) -> bool:
        return (
            self.step >= cfg.max_steps
            or (cfg.max_epochs is not None and self.epoch >= cfg.max_epochs)
            or self.stopped_early
            or self.out_of_time
        )


def train(cfg: RunConfig, run_dir: Path, resume: bool = False) -> dict[str, Any]:
    """Train the model ``cfg`` describes on ``cfg.data.dir`` and write the run to ``run_dir``.

    Args:
        cfg: the run configuration (see ``transformer.settings``).
        run_dir: output directory (layout in ``transformer.training.checkpoint``).
        resume: continue from the latest complete checkpoint in ``run_dir`` (from scratch if there is none).

    Returns: a summary: final step and epoch, last training loss, best validation score, throughput, ...
    Under torchrun every process calls it; only rank 0 writes files.
    """
    t = cfg.train
    run_dir = Path(run_dir)
    world = distributed.setup(t.device)
    log_file = None
    package_log, level = logging.getLogger("transformer"), logging.getLogger("transformer").level
    if not world.is_main:  # one process reports
        package_log.setLevel(logging.WARNING)
    try:
        data = PreparedData.load(cfg.data.dir)
        train_set = EncodedCorpus.load(cfg.data.dir, "train")
        valid_set = EncodedCorpus.load(cfg.data.dir, "valid") if "valid" in data.splits else None
        sampler = TokenBatchSampler(train_set.src_lengths, train_set.tgt_lengths, cfg.data.max_tokens,
                                    seed=t.seed, num_replicas=world.world_size, rank=world.rank)
        log_file = start_run_dir(cfg, run_dir, resume, world)

        if t.threads is not None:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)
        model = build_model(cfg, data.src_vocab, data.tgt_vocab).to(world.device)
        model.recompute_layers(t.recompute)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=t.betas, eps=t.eps)
        torch.manual_seed(rank_seed(t.seed, world.rank))  # dropout differs between ranks
        progress = (restore(run_dir, model, optimizer, world) if resume else None) or Progress()
        forward = compiled(distributed.wrap(DecoderStates(model), world), t.compile)
        autocast = functools.partial(torch.autocast, world.device.type, dtype=torch.bfloat16, enabled=t.bf16)
        epoch_batches = functools.lru_cache(maxsize=1)(sampler.batches)
        metrics = MetricsLog(run_dir, from_step=progress.step, enabled=world.is_main)
        bar = tqdm(total=t.max_steps, initial=progress.step, unit="step", leave=False,
                   disable=None if world.is_main else True)  # None: only on a terminal
        meter = Meter()
        log.info("training %s parameters on %s x %d; %d batches per epoch per process",
                 f"{count_parameters(model):,}", world.device, world.world_size, len(sampler))

        started = time.monotonic() - progress.elapsed_s  # the clock carries over resumes
        progress.out_of_time = out_of_time(progress.elapsed_s, t.max_minutes)  # a resume may raise the budget
        while not progress.finished(t):
            batches = next_batches(train_set, epoch_batches(progress.epoch), progress, t.accumulate, model)
            step = progress.step + 1
            set_lr(optimizer, noam_lr(step, model.cfg.d_model, t.warmup, t.lr_scale)
                   * cooldown(step, t.max_steps, t.decay_steps))
            loss, n_tokens, seconds = train_step(forward, model, optimizer, batches, t, world, autocast)
            advance(progress, len(batches), len(epoch_batches(progress.epoch)))
            progress.elapsed_s = time.monotonic() - started
            progress.out_of_time = out_of_time(progress.elapsed_s, t.max_minutes)
            meter.add(loss, n_tokens, seconds)
            done = progress.finished(t)
            if progress.out_of_time:
                log.info("train.max_minutes=%g spent after %d steps: stopping", t.max_minutes, progress.step)

            if progress.step % t.log_every == 0 or done:
                record = meter.flush(progress.step, optimizer.param_groups[0]["lr"])
                metrics.write(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}",
                                tok_s=f"{record['tokens_per_s']:.0f}")
                log.info("step %d | epoch %d | loss %.4f | lr %.3e | %.0f tok/s", progress.step, progress.epoch,
                         record["loss"], record["lr"], record["tokens_per_s"])
            if valid_set is not None and (progress.step % t.eval_every == 0 or done):
                scores = validate(model, valid_set, data.tgt_vocab, cfg, world, autocast)
                improved = update_best(progress, scores, t)
                metrics.write({"step": progress.step, **scores})
                log.info("step %d | %s%s", progress.step, " | ".join(f"{k} {v:.4f}" for k, v in scores.items()),
                         " | best" if improved else "")
                if improved and world.is_main:
                    checkpoint.save_weights(model, run_dir / checkpoint.BEST, {"step": progress.step, **scores})
                if t.patience is not None and progress.bad_evals >= t.patience:
                    log.info("no improvement in %d validations: stopping early", progress.bad_evals)
                    progress.stopped_early = True
            if progress.step % t.save_every == 0 or progress.finished(t):
                save(run_dir, model, optimizer, progress, t.keep_last, world)
            bar.update(1)

        bar.close()
        metrics.close()
        return summary(progress, meter, run_dir, t)
    finally:
        if log_file is not None:
            package_log.removeHandler(log_file)
            log_file.close()
        package_log.setLevel(level)
        distributed.cleanup(world)


# -- setup -----------------------------------------------------------------------------------------------


def start_run_dir(cfg: RunConfig, run_dir: Path, resume: bool, world: World) -> logging.Handler | None:
    """Make ``run_dir`` self-contained (config.toml, vocab/) and log to ``run_dir/train.log`` (rank 0)."""
    if not resume and checkpoint.list_checkpoints(run_dir):
        raise FileExistsError(f"{run_dir} already holds checkpoints: resume it, or choose another run directory")
    if not world.is_main:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write(run_dir / "config.toml", lambda tmp: save_config(cfg, tmp))
    checkpoint.copy_vocab(Path(cfg.data.dir), run_dir)
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("transformer").addHandler(handler)
    return handler


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (weights are initialised from torch's)."""
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """A seed for one process's dropout, different for every (seed, rank)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def build_model(cfg: RunConfig, src_vocab: Vocab, tgt_vocab: Vocab) -> Transformer:
    """The model of ``cfg.model`` for these vocabularies; embeddings are shared only with a joint vocabulary."""
    fields = dict(cfg.model)
    if fields["share_embeddings"] and src_vocab is not tgt_vocab:
        log.warning("model.share_embeddings needs a joint vocabulary (prepare --joint); not sharing")
        fields["share_embeddings"] = False
    return Transformer(dataclasses.replace(cfg, model=fields).model_config(
        len(src_vocab), len(tgt_vocab), Vocab.pad_id, Vocab.bos_id, Vocab.eos_id))


class DecoderStates(torch.nn.Module):
    """src, tgt_in -> decoder hidden states: the part of the model that DDP and torch.compile wrap (the loss
    projects the states to the vocabulary in chunks, see ``loss.py``)."""

    def __init__(self, model: Transformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory = self.model.encode(src)  # (B, S, D)
        return self.model.decode(tgt_in, memory, self.model.source_mask(src))  # (B, T, D)


def compiled(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    return torch.compile(module, dynamic=True) if enabled else module


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # shared tensors are yielded once


def out_of_time(elapsed_s: float, max_minutes: float | None) -> bool:
    """Whether the time budget is spent; under torchrun rank 0's clock decides for every rank, so none diverge."""
    if max_minutes is None:
        return False
    return bool(distributed.broadcast_objects([elapsed_s >= 60.0 * max_minutes])[0])


def restore(run_dir: Path, model: Transformer, optimizer: torch.optim.Optimizer, world: World) -> Progress | None:
    """Load the latest complete checkpoint into ``model`` and ``optimizer``; None if there is none."""
    path = checkpoint.latest_checkpoint(run_dir)
    if path is None:
        log.info("no checkpoint in %s: starting from scratch", run_dir)
        return None
    checkpoint.load_weights_into(model, path)
    state = checkpoint.load_training_state(path)
    optimizer.load_state_dict(state["optimizer"])
    if len(state["rng"]) == world.world_size:
        checkpoint.set_rng_state(state["rng"][world.rank])
    else:
        log.warning("checkpoint from %d processes, now %d: random streams restart", len(state["rng"]),
                    world.world_size)
    log.info("resuming from %s", path)
    return Progress(**state["progress"])


# -- one step ----------------------------------------------------------------------------------------------


def next_batches(corpus: EncodedCorpus, epoch: list[list[int]], progress: Progress, accumulate: int,
                 model: Transformer) -> list[Batch]:
    """The next ``accumulate`` batches of this epoch (fewer at its end)."""
    cfg = model.cfg
    start = progress.batch_in_epoch
    return [collate(corpus.pairs(ix), cfg.pad_id, cfg.bos_id, cfg.eos_id) for ix in epoch[start : start + accumulate]]


def advance(progress: Progress, n_batches: int, epoch_length: int) -> None:
    progress.step += 1
    progress.batch_in_epoch += n_batches
    if progress.batch_in_epoch >= epoch_length:
        progress.epoch += 1
        progress.batch_in_epoch = 0


def train_step(
    forward: torch.nn.Module, model: Transformer, optimizer: torch.optim.Optimizer, batches: list[Batch],
    t: TrainConfig, world: World, autocast: Any,
) -> tuple[torch.Tensor, int, float]:
    """One optimizer update on ``batches``: (summed loss of this process, target tokens of all processes, seconds).

    Each batch's loss is divided by the target tokens of the whole update on all processes (times the number
    of processes, since DDP averages gradients), so N processes x k batches = 1 process x N*k batches.
    """
    started = time.perf_counter()
    n_tokens = sum(b.n_tgt_tokens for b in batches)
    n_tokens = int(distributed.all_reduce_sum(torch.tensor([n_tokens], device=world.device)).item())
    scale = world.world_size / n_tokens
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), device=world.device)
    for i, batch in enumerate(batches):
        batch = batch.to(world.device, non_blocking=True)
        with distributed.no_sync(forward, sync=i == len(batches) - 1):
            with autocast():
                hidden = forward(batch.src, batch.tgt_in)  # (B, T, D)
                loss = label_smoothed_loss(hidden, batch.tgt_out, model.output_weight, model.cfg.pad_id,
                                           t.label_smoothing, t.loss_chunk_size, compiled=t.compile_loss)
            (loss.loss * scale).backward()
        loss_sum += loss.loss.detach()
    if t.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
    optimizer.step()
    return loss_sum, n_tokens, time.perf_counter() - started


class Meter:
    """Training loss and throughput between two log lines (summed on all processes when read)."""

    def __init__(self) -> None:
        self.loss = 0.0
        self.total_tokens = 0
        self.total_seconds = 0.0
        self.last: dict[str, float] = {}
        self._loss = None
        self._tokens = 0
        self._seconds = 0.0

    def add(self, loss: torch.Tensor, n_tokens: int, seconds: float) -> None:
        self._loss = loss if self._loss is None else self._loss + loss
        self._tokens += n_tokens
        self._seconds += seconds

    def flush(self, step: int, lr: float) -> dict[str, Any]:
        loss = float(distributed.all_reduce_sum(self._loss.double().reshape(1)).item()) / self._tokens
        record = {"step": step, "loss": loss, "lr": lr, "tokens_per_s": self._tokens / max(self._seconds, 1e-9)}
        self.total_tokens += self._tokens
        self.total_seconds += self._seconds
        self.last = record
        self._loss, self._tokens, self._seconds = None, 0, 0.0
        return record


# -- validation, checkpoints, summary ----------------------------------------------------------------------


def validate(model: Transformer, corpus: EncodedCorpus, tgt_vocab: Vocab, cfg: RunConfig, world: World,
             autocast: Any) -> dict[str, float]:
    """valid_loss, valid_nll, valid_ppl and (rank 0 decodes, everyone gets it) valid_bleu."""
    t = cfg.train
    model.eval()
    max_tokens = cfg.data.valid_max_tokens or cfg.data.max_tokens
    loss, nll = validation_loss(model, corpus, max_tokens, t.label_smoothing, t.loss_chunk_size, world, autocast)
    scores = {"valid_loss": loss, "valid_nll": nll, "valid_ppl": perplexity(nll)}
    if t.valid_bleu_sentences != 0:
        bleu = [None]
        if world.is_main:
            bleu[0] = validation_bleu(model, corpus, tgt_vocab, t.valid_bleu_sentences, t.valid_beam_size,
                                      cfg.decode.length_penalty, cfg.decode.max_len, max_tokens, world.device)
        scores["valid_bleu"] = distributed.broadcast_objects(bleu)[0]
    model.train()
    return scores


def update_best(progress: Progress, scores: dict[str, float], t: TrainConfig) -> bool:
    """Record a validation in ``progress``; True if it is the best so far."""
    score = scores["valid_bleu"] if t.best_metric == "bleu" else scores["valid_loss"]
    better = progress.best_score is None or (
        score > progress.best_score if t.best_metric == "bleu" else score < progress.best_score
    )
    if better:
        progress.best_score, progress.best_step, progress.bad_evals = score, progress.step, 0
    else:
        progress.bad_evals += 1
    return better


def save(run_dir: Path, model: Transformer, optimizer: torch.optim.Optimizer, progress: Progress, keep_last: int,
         world: World) -> None:
    """Checkpoint (rank 0 writes; every rank's RNG states go into it)."""
    rng = distributed.all_gather_objects(checkpoint.rng_state())
    if world.is_main:
        state = {"progress": dataclasses.asdict(progress), "optimizer": optimizer.state_dict(), "rng": rng}
        path = checkpoint.save_checkpoint(run_dir, progress.step, model, state, keep_last)
        log.debug("saved %s", path)
    distributed.barrier()


def summary(progress: Progress, meter: Meter, run_dir: Path, t: TrainConfig) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "step": progress.step,
        "epoch": progress.epoch,
        "train_loss": meter.last.get("loss"),
        "best_metric": t.best_metric,
        "best_score": progress.best_score,
        "best_step": progress.best_step,
        "stopped_early": progress.stopped_early,
        "out_of_time": progress.out_of_time,
        "elapsed_s": progress.elapsed_s,
        "tokens_per_s": meter.total_tokens / meter.total_seconds if meter.total_seconds else None,
    }
