"""Decoding throughput: ``DECODERS``, the implementations timed, and ``run_decode``, the ``decode`` part.

Every implementation translates the same sentences to exactly ``--decode-len`` tokens (EOS forbidden before
that), at each beam size of ``--beams``. An entry's ``build(models)`` takes the shared ``DecodeModels`` and
returns a ``Translate``: (beam, length) -> output tokens per sentence (the shortest output, as checked and
recorded on the first call). CTranslate2 runs in worker processes of its own (``ct2_worker``): loaded into this
process it slowed PyTorch's decoding.
"""

from __future__ import annotations

import argparse
import copy
import gc
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path

import torch

import peers
import workload
from bench_models import Impl, build_marian, build_nn, build_ours, select
from bench_report import add_row, add_skipped
from bench_timing import interleaved, log
from ct2_worker import Ct2Worker
from transformer import Transformer
from transformer.ops.linear import bf16_supported
from workload import PAD, SIZES

Translate = Callable[[int, int], int]  # (beam, length) -> output tokens per sentence


@dataclass(frozen=True)
class DecodeImpl(Impl):
    """An ``Impl`` whose ``build(models: DecodeModels) -> Translate``; ``greedy_only``: timed at beam 1 only."""

    greedy_only: bool = False


class DecodeModels:
    """What the decoders of one size share, each built on first use: the sources (B, S), our model, the Marian
    model (which HF decodes and CTranslate2 is converted from), and the CTranslate2 workers; ``close`` stops
    the workers."""

    def __init__(self, size: dict[str, int], src: torch.Tensor, directory: str, threads: int) -> None:
        self.size, self.src, self.directory, self.threads = size, src, directory, threads
        self.workers: list[Ct2Worker] = []

    @cached_property
    def ours(self) -> Transformer:
        return build_ours(self.size).eval()

    @cached_property
    def marian(self):
        return build_marian(self.size).eval()

    @cached_property
    def ct2(self) -> Ct2Worker:
        """The Marian model converted by CTranslate2's own converter, float32 and int8, in a worker."""
        model_dir = peers.convert_to_ctranslate2(self.marian, self.directory)
        return self._start(model_dir, peers.ctranslate2_tokens(self.src))

    @cached_property
    def exported(self) -> Ct2Worker:
        """Our model exported by our exporter (``transformer export``), float32 and int8, in a worker."""
        model_dir = peers.export_ours_to_ctranslate2(self.ours, self.directory)
        return self._start(model_dir, peers.our_ctranslate2_tokens(self.src))

    def _start(self, model_dir: Path, tokens: list[list[str]]) -> Ct2Worker:
        worker = Ct2Worker(model_dir, tokens, self.threads)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def _generate(model: Transformer, src: torch.Tensor) -> Translate:
    return lambda beam, length: model.generate(src, beam_size=beam, max_len=length, min_len=length).size(1)


def decode_ours(models: DecodeModels) -> Translate:
    return _generate(models.ours, models.src)


def decode_ours_int8(models: DecodeModels) -> Translate:
    """Ours with int8 weights in every linear layer (``Transformer.set_int8_inference``)."""
    return _generate(copy.deepcopy(models.ours).set_int8_inference(), models.src)


def decode_ours_bf16(models: DecodeModels) -> Translate:
    """Ours with bfloat16 products in every linear layer (``Transformer.set_inference_precision``)."""
    return _generate(copy.deepcopy(models.ours).set_inference_precision("bfloat16"), models.src)


def _no_bf16() -> str | None:
    return None if bf16_supported() else "this CPU has no bf16 matrix units (AMX or AVX512-BF16)"


def decode_hf(models: DecodeModels) -> Translate:
    """``MarianMTModel.generate`` with its key/value cache, on the sources in Marian's ids."""
    marian = models.marian
    src, mask = peers.to_marian(models.src, marian.config.vocab_size), (models.src != PAD).long()

    def translate(beam: int, length: int) -> int:
        with torch.inference_mode():
            out = marian.generate(input_ids=src, attention_mask=mask, num_beams=beam, do_sample=False,
                                  min_new_tokens=length, max_new_tokens=length, use_cache=True)
        return out.size(1) - 1  # minus the decoder start token

    return translate


def _in_worker(worker: Ct2Worker, compute_type: str) -> Translate:
    return lambda beam, length: worker.translate(compute_type, beam, length)


def decode_ct2(compute_type: str, models: DecodeModels) -> Translate:
    return _in_worker(models.ct2, compute_type)


def decode_exported(compute_type: str, models: DecodeModels) -> Translate:
    return _in_worker(models.exported, compute_type)


def decode_nn(models: DecodeModels) -> Translate:
    """nn.Transformer re-running the whole prefix at every step (it has no cache): greedy only."""
    peer, src = build_nn(models.size).eval(), models.src
    return lambda beam, length: peer.greedy_no_cache(src, length).size(1)


_CT2 = ("transformers", "ctranslate2")  # converted from the Marian model
DECODERS: dict[str, DecodeImpl] = {impl.label: impl for impl in (
    DecodeImpl("ours", "ours", decode_ours),
    DecodeImpl("ours int8", "int8", decode_ours_int8),
    DecodeImpl("ours bf16", "bf16", decode_ours_bf16, unavailable=_no_bf16),
    DecodeImpl("HF generate", "hf", decode_hf, needs=("transformers",)),
    DecodeImpl("CT2 float32", "ct2", partial(decode_ct2, "float32"), needs=_CT2),
    DecodeImpl("CT2 int8", "ct2", partial(decode_ct2, "int8"), needs=_CT2),
    DecodeImpl("ours->CT2 float32", "export", partial(decode_exported, "float32"), needs=("ctranslate2",)),
    DecodeImpl("ours->CT2 int8", "export", partial(decode_exported, "int8"), needs=("ctranslate2",)),
    DecodeImpl("nn.Transformer, no cache", "nn", decode_nn, greedy_only=True),
)}


def run_decode(size_name: str, args: argparse.Namespace, report: dict) -> None:
    """The ``decode`` part at one size: for each beam, every selected decoder, interleaved; rows of sentences/s."""
    size = SIZES[size_name]
    src = workload.decode_sources(size["vocab"], args.decode_sentences)
    impls, skipped = select(DECODERS, args.impls)
    with tempfile.TemporaryDirectory() as tmp:
        models = DecodeModels(size, src, tmp, args.threads)
        try:
            _run_beams(size_name, models, impls, args, report)
        finally:
            models.close()
    add_skipped(report, size_name, "decode", skipped)
    del models
    gc.collect()


def _run_beams(size_name: str, models: DecodeModels, impls: list[DecodeImpl], args: argparse.Namespace,
               report: dict) -> None:
    translators = {impl.label: impl.build(models) for impl in impls}
    n_sentences = models.src.size(0)
    for beam in args.beams:
        labels = [impl.label for impl in impls if beam == 1 or not impl.greedy_only]
        runners = {label: partial(translators[label], beam, args.decode_len) for label in labels}
        lengths = {label: run() for label, run in runners.items()}  # also a first warm-up
        log(f"[{size_name}] decode beam {beam}: {n_sentences} sentences, tokens out per sentence {lengths}")
        times = interleaved(runners, args.reps, max(args.warmup - 1, 0))
        for label in runners:
            add_row(report, size_name, "decode", f"beam {beam}", label, times[label], n_sentences, "sent/s",
                    out_tokens=lengths[label])
