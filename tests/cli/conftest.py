"""Fixtures of the command-line tests: one tiny trained run directory on the demo task, shared by the session.

The model trains for a handful of steps only: the tests compare each command with the library (Translator,
sacreBLEU) on the same inputs, which needs a real run directory, not an accurate model.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from transformer.cli import main
from transformer.data import prepare
from transformer.demo.numbers import make_demo_corpus
from transformer.run_config import load_config
from transformer.training.loop import train


@dataclass(frozen=True)
class TinyRun:
    run_dir: Path
    test_src: Path  # held-out English numbers
    test_ref: Path  # their German words


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine two threads that wait for each other are much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """A run directory trained for 100 steps on 300 number pairs (0..9999), with a 30-pair test split."""
    root = tmp_path_factory.mktemp("tiny_run")
    files = make_demo_corpus(root / "raw", n_train=300, n_valid=20, n_test=30, max_number=9999, seed=1)
    prepare(*files["train"], root / "data", *files["valid"], vocab_size=60, joint=True, model_type="bpe")
    cfg = load_config(
        None,
        [
            f"data.dir={json.dumps(str(root / 'data'))}",
            "data.max_tokens=256",
            "model.d_model=32",
            "model.n_heads=2",
            "model.d_ff=64",
            "model.n_encoder_layers=1",
            "model.n_decoder_layers=1",
            "model.share_embeddings=true",
            "train.max_steps=100",
            "train.warmup=10",
            "train.lr_scale=2.0",
            "train.device='cpu'",
            "train.threads=1",
            "train.log_every=50",
            "train.eval_every=50",
            "train.save_every=50",
            "train.valid_bleu_sentences=0",
        ],
    )
    threads = torch.get_num_threads()
    train(cfg, root / "run")
    torch.set_num_threads(threads)
    return TinyRun(root / "run", *files["test"])


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """``cli(*args, stdin="...")``: ``transformer ARGS`` in this process, stdin given, stdout/stderr captured."""

    def run(*args: str, stdin: str | bytes = "") -> CliResult:
        data = stdin.encode("utf-8") if isinstance(stdin, str) else stdin
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def run_subprocess() -> Callable[..., subprocess.CompletedProcess]:
    """``run_subprocess(args, stdin)``: ``python -m transformer ARGS`` in a fresh process with one thread (the
    real stdin/stdout path), output captured as text."""

    def run(args: list[str], stdin: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return subprocess.run(
            [sys.executable, "-m", "transformer", *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            env=env,
        )

    return run
