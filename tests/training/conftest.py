"""Fixtures of the training tests: a tiny prepared corpus (word reversal) and tiny run configs.

Tests run with one torch thread: on a shared 2-core machine, two threads that wait for each other are many
times slower than one, and bitwise comparisons between processes need the same thread count anyway.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from transformer.data import prepare
from transformer.run_config import RunConfig, load_config

WORDS = ["red", "blue", "green", "black", "white", "small", "large", "cat", "dog", "bird"]

# A model small enough for many short runs per test, with dropout so that resuming must restore RNG states.
TINY_MODEL = [
    "model.d_model=32", "model.n_heads=2", "model.d_ff=64", "model.n_encoder_layers=1", "model.n_decoder_layers=1",
    "model.dropout=0.1", "model.share_embeddings=true",
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_pairs(directory: Path, name: str, n: int, rng: random.Random) -> tuple[Path, Path]:
    src, tgt = [], []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        src.append(" ".join(words))
        tgt.append(" ".join(reversed(words)))
    paths = directory / f"{name}.src", directory / f"{name}.tgt"
    for path, lines in zip(paths, (src, tgt)):
        path.write_text("".join(line + "\n" for line in lines))
    return paths


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared joint-vocabulary corpus: 400 training and 40 validation pairs of reversed word lists."""
    raw = tmp_path_factory.mktemp("raw")
    rng = random.Random(0)
    train = _write_pairs(raw, "train", 400, rng)
    valid = _write_pairs(raw, "valid", 40, rng)
    out = tmp_path_factory.mktemp("prepared")
    prepare(*train, out, *valid, vocab_size=40, joint=True)
    return out


@pytest.fixture
def overrides(corpus_dir: Path) -> Callable[..., list[str]]:
    """``overrides(*extra)``: ``--set`` values for a few-second run of the tiny model on ``corpus_dir``."""

    def make(*extra: str) -> list[str]:
        return [
            f"data.dir={str(corpus_dir)!r}", "data.max_tokens=128", *TINY_MODEL, "train.warmup=10",
            "train.lr_scale=0.5", "train.device='cpu'", "train.threads=1", "train.log_every=2", "train.eval_every=4",
            "train.save_every=4", "train.valid_bleu_sentences=8", *extra,
        ]

    return make


@pytest.fixture
def make_config(overrides: Callable[..., list[str]]) -> Callable[..., RunConfig]:
    """``make_config(*extra)``: the RunConfig of ``overrides(*extra)``."""
    return lambda *extra: load_config(None, overrides(*extra))


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli(args)``: ``python -m transformer ARGS`` in a fresh process with one thread, output captured."""

    def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "transformer", *args], capture_output=True, text=True,
                              timeout=timeout, env=subprocess_env())

    return run


@pytest.fixture
def spawn_cli() -> Callable[..., subprocess.Popen]:
    """``spawn_cli(args)``: start ``python -m transformer ARGS`` (one thread) without waiting for it."""

    def spawn(args: list[str]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "transformer", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=subprocess_env())

    return spawn
