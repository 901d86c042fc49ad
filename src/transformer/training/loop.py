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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..checkpoint import load_weights_into, save_weights
from ..data import Batch, EncodedCorpus, PreparedData, TokenBatchSampler, Vocab, collate
from ..data.vocab import same_ids
from ..io import atomic_write
from ..model import Transformer
from ..run_config import RunConfig, TrainConfig, save_config
from ..run_dir import BEST, CONFIG, copy_vocab, latest_checkpoint, list_checkpoints
from . import distributed
from .checkpoint import load_training_state, save_checkpoint
from .distributed import World
from .init import load_initial_weights
from .loss import label_smoothed_loss
from .metrics import MetricsLog
from .rng import rank_seed, rng_state, seed_everything, set_rng_state
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
        cfg: the run configuration (see ``transformer.run_config``).
        run_dir: output directory (layout in ``transformer.run_dir``).
        resume: continue from the latest complete checkpoint in ``run_dir`` (from scratch if there is none).

    Returns: a summary: final step and epoch, last training loss, best validation score, throughput, ...
    Under torchrun every process calls it; only rank 0 writes files.
    """
    run_dir = Path(run_dir)
    world = distributed.setup(cfg.train.device)
    package_log, level = logging.getLogger("transformer"), logging.getLogger("transformer").level
    if not world.is_main:  # one process reports
        package_log.setLevel(logging.WARNING)
    run = None
    try:
        run = Run.start(cfg, run_dir, resume, world)
        return run.loop()
    finally:
        if run is not None:
            stop_logging(run.log_file)
        package_log.setLevel(level)
        distributed.cleanup(world)


@dataclass
class Run:
    """One training run's objects: the data, the model and its optimizer, where training is, and its records."""

    cfg: RunConfig
    run_dir: Path
    world: World
    data: PreparedData
    train_set: EncodedCorpus
    valid_set: EncodedCorpus | None
    epoch_batches: Callable[[int], list[list[int]]]  # epoch -> this rank's batches (sentence indices)
    model: Transformer
    forward: torch.nn.Module  # src, tgt_in -> decoder states, wrapped by DDP / torch.compile as asked
    optimizer: torch.optim.Optimizer
    progress: Progress
    autocast: Callable[[], Any]
    log_file: logging.Handler | None

    @staticmethod
    def start(cfg: RunConfig, run_dir: Path, resume: bool, world: World) -> Run:
        """Load the data, prepare ``run_dir``, build (or restore) the model and optimizer."""
        recipe = cfg.train
        data = PreparedData.load(cfg.data.dir)
        train_set = EncodedCorpus.load(cfg.data.dir, "train")
        valid_set = EncodedCorpus.load(cfg.data.dir, "valid") if "valid" in data.splits else None
        sampler = TokenBatchSampler(train_set.src_lengths, train_set.tgt_lengths, cfg.data.max_tokens,
                                    seed=recipe.seed, num_replicas=world.world_size, rank=world.rank)
        log_file = start_run_dir(cfg, run_dir, resume, world)
        try:
            if recipe.threads is not None:
                torch.set_num_threads(recipe.threads)
            seed_everything(recipe.seed)
            model = build_model(cfg, data.src_vocab, data.tgt_vocab).to(world.device)
            model.recompute_layers(recipe.recompute)
            optimizer = torch.optim.Adam(model.parameters(), lr=0.0, betas=recipe.betas, eps=recipe.eps)
            torch.manual_seed(rank_seed(recipe.seed, world.rank))  # dropout differs between ranks
            progress = restore(run_dir, model, optimizer, world) if resume else None
            if progress is None and recipe.init_from is not None:  # fine-tuning, from its first step
                load_initial_weights(model, recipe.init_from)
            progress = progress or Progress()
        except BaseException:
            stop_logging(log_file)
            raise
        forward = compiled(distributed.wrap(TeacherForcing(model), world), recipe.compile)
        autocast = functools.partial(torch.autocast, world.device.type, dtype=torch.bfloat16, enabled=recipe.bf16)
        log.info("training %s parameters on %s x %d; %d batches per epoch per process",
                 f"{count_parameters(model):,}", world.device, world.world_size, len(sampler))
        return Run(cfg, run_dir, world, data, train_set, valid_set, functools.lru_cache(maxsize=1)(sampler.batches),
                   model, forward, optimizer, progress, autocast, log_file)

    def loop(self) -> dict[str, Any]:
        """Optimizer steps until ``train.max_steps`` (or epochs, time, patience) are spent; the run's summary."""
        recipe, progress = self.cfg.train, self.progress
        metrics = MetricsLog(self.run_dir, from_step=progress.step, enabled=self.world.is_main)
        bar = tqdm(total=recipe.max_steps, initial=progress.step, unit="step", leave=False,
                   disable=None if self.world.is_main else True)  # None: only on a terminal
        meter = Meter()
        started = time.monotonic() - progress.elapsed_s  # the clock carries over resumes
        progress.out_of_time = out_of_time(progress.elapsed_s, recipe.max_minutes)  # a resume may raise the budget
        while not progress.finished(recipe):
            self.step(meter, started)
            if progress.step % recipe.log_every == 0 or progress.finished(recipe):
                record = meter.flush(progress.step, self.optimizer.param_groups[0]["lr"])
                metrics.write(record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.2e}",
                                tok_s=f"{record['tokens_per_s']:.0f}")
                log.info("step %d | epoch %d | loss %.4f | lr %.3e | %.0f tok/s", progress.step, progress.epoch,
                         record["loss"], record["lr"], record["tokens_per_s"])
            if self.valid_set is not None and (progress.step % recipe.eval_every == 0 or progress.finished(recipe)):
                self.validate_and_keep_best(metrics)
            if progress.step % recipe.save_every == 0 or progress.finished(recipe):
                save(self.run_dir, self.model, self.optimizer, progress, recipe.keep_last, self.world)
            bar.update(1)
        bar.close()
        metrics.close()
        return summary(progress, meter, self.run_dir, recipe)

    def step(self, meter: Meter, started: float) -> None:
        """One optimizer update on the next ``train.accumulate`` batches, at the learning rate of §5.3."""
        recipe, progress = self.cfg.train, self.progress
        epoch = self.epoch_batches(progress.epoch)
        batches = next_batches(self.train_set, epoch, progress, recipe.accumulate, self.model)
        step = progress.step + 1
        set_lr(self.optimizer, noam_lr(step, self.model.cfg.d_model, recipe.warmup, recipe.lr_scale)
               * cooldown(step, recipe.max_steps, recipe.decay_steps))
        loss, n_tokens, seconds = train_step(self.forward, self.model, self.optimizer, batches, recipe, self.world,
                                             self.autocast)
        advance(progress, len(batches), len(epoch))
        progress.elapsed_s = time.monotonic() - started
        progress.out_of_time = out_of_time(progress.elapsed_s, recipe.max_minutes)
        meter.add(loss, n_tokens, seconds)
        if progress.out_of_time:
            log.info("train.max_minutes=%g spent after %d steps: stopping", recipe.max_minutes, progress.step)

    def validate_and_keep_best(self, metrics: MetricsLog) -> None:
        """Validate; write ``best.safetensors`` when it is the best so far; stop early when patience runs out."""
        recipe, progress = self.cfg.train, self.progress
        assert self.valid_set is not None
        scores = validate(self.model, self.valid_set, self.data.tgt_vocab, self.cfg, self.world, self.autocast)
        improved = update_best(progress, scores, recipe)
        metrics.write({"step": progress.step, **scores})
        log.info("step %d | %s%s", progress.step, " | ".join(f"{k} {v:.4f}" for k, v in scores.items()),
                 " | best" if improved else "")
        if improved and self.world.is_main:
            save_weights(self.model, self.run_dir / BEST, {"step": progress.step, **scores})
        if recipe.patience is not None and progress.bad_evals >= recipe.patience:
            log.info("no improvement in %d validations: stopping early", progress.bad_evals)
            progress.stopped_early = True


# -- setup -----------------------------------------------------------------------------------------------


def start_run_dir(cfg: RunConfig, run_dir: Path, resume: bool, world: World) -> logging.Handler | None:
    """Make ``run_dir`` self-contained (config.toml, vocab/) and log to ``run_dir/train.log`` (rank 0)."""
    if not resume and list_checkpoints(run_dir):
        raise FileExistsError(f"{run_dir} already holds checkpoints: resume it, or choose another run directory")
    if not world.is_main:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / CONFIG, lambda tmp: save_config(cfg, tmp))
    copy_vocab(Path(cfg.data.dir), run_dir)
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("transformer").addHandler(handler)
    return handler


def stop_logging(handler: logging.Handler | None) -> None:
    """Undo ``start_run_dir``'s file log."""
    if handler is not None:
        logging.getLogger("transformer").removeHandler(handler)
        handler.close()


def build_model(cfg: RunConfig, src_vocab: Vocab, tgt_vocab: Vocab) -> Transformer:
    """The model of ``cfg.model`` for these vocabularies; embeddings are shared only with a joint vocabulary."""
    architecture = cfg.model
    if architecture.share_embeddings and not same_ids(src_vocab, tgt_vocab):
        log.warning("model.share_embeddings needs a joint vocabulary (prepare --joint); not sharing")
        architecture = dataclasses.replace(architecture, share_embeddings=False)
    return Transformer(dataclasses.replace(cfg, model=architecture).model_config(
        len(src_vocab), len(tgt_vocab), tgt_vocab.pad_id, tgt_vocab.bos_id, tgt_vocab.eos_id))


class TeacherForcing(torch.nn.Module):
    """src, tgt_in -> decoder hidden states, the target fed in shifted right: the part of the model that DDP and
    torch.compile wrap (the loss projects the states to the vocabulary in chunks, see ``loss.py``)."""

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
    path = latest_checkpoint(run_dir)
    if path is None:
        log.info("no checkpoint in %s: starting from scratch", run_dir)
        return None
    load_weights_into(model, path)
    state = load_training_state(path)
    optimizer.load_state_dict(state["optimizer"])
    if len(state["rng"]) == world.world_size:
        set_rng_state(state["rng"][world.rank])
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
    recipe: TrainConfig, world: World, autocast: Any,
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
        batch = batch.to(world.device)
        with distributed.no_sync(forward, sync=i == len(batches) - 1):
            with autocast():
                hidden = forward(batch.src, batch.tgt_in)  # (B, T, D)
                loss = label_smoothed_loss(hidden, batch.tgt_out, model.output_weight, model.cfg.pad_id,
                                           recipe.label_smoothing, recipe.loss_chunk_size, compiled=recipe.compile_loss,
                                           output_bias=model.output_bias)
            (loss.loss * scale).backward()
        loss_sum += loss.loss.detach()
    if recipe.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
    optimizer.step()
    return loss_sum, n_tokens, time.perf_counter() - started


class Meter:
    """Training loss and throughput between two log lines (summed on all processes when read)."""

    def __init__(self) -> None:
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
    recipe = cfg.train
    model.eval()
    max_tokens = cfg.data.valid_max_tokens or cfg.data.max_tokens
    loss, nll = validation_loss(model, corpus, max_tokens, recipe.label_smoothing, recipe.loss_chunk_size, world,
                                autocast)
    scores = {"valid_loss": loss, "valid_nll": nll, "valid_ppl": perplexity(nll)}
    if recipe.valid_bleu_sentences != 0:
        bleu = [None]
        if world.is_main:
            options = dataclasses.replace(cfg.decode, beam_size=recipe.valid_beam_size, n_best=1)
            bleu[0] = validation_bleu(model, corpus, tgt_vocab, recipe.valid_bleu_sentences, options, max_tokens,
                                      world.device)
        scores["valid_bleu"] = distributed.broadcast_objects(bleu)[0]
    model.train()
    return scores


def update_best(progress: Progress, scores: dict[str, float], recipe: TrainConfig) -> bool:
    """Record a validation in ``progress``; True if it is the best so far."""
    score = scores["valid_bleu"] if recipe.best_metric == "bleu" else scores["valid_loss"]
    better = progress.best_score is None or (
        score > progress.best_score if recipe.best_metric == "bleu" else score < progress.best_score
    )
    if better:
        progress.best_score, progress.best_step, progress.bad_evals = score, progress.step, 0
    else:
        progress.bad_evals += 1
    return better


def save(run_dir: Path, model: Transformer, optimizer: torch.optim.Optimizer, progress: Progress, keep_last: int,
         world: World) -> None:
    """Checkpoint (rank 0 writes; every rank's RNG states go into it)."""
    rng = distributed.all_gather_objects(rng_state())
    if world.is_main:
        state = {"progress": dataclasses.asdict(progress), "optimizer": optimizer.state_dict(), "rng": rng}
        path = save_checkpoint(run_dir, progress.step, model, state, keep_last)
        log.debug("saved %s", path)
    distributed.barrier()


def summary(progress: Progress, meter: Meter, run_dir: Path, recipe: TrainConfig) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "step": progress.step,
        "epoch": progress.epoch,
        "train_loss": meter.last.get("loss"),
        "best_metric": recipe.best_metric,
        "best_score": progress.best_score,
        "best_step": progress.best_step,
        "stopped_early": progress.stopped_early,
        "out_of_time": progress.out_of_time,
        "elapsed_s": progress.elapsed_s,
        "tokens_per_s": meter.total_tokens / meter.total_seconds if meter.total_seconds else None,
    }
