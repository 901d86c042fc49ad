"""Fixtures of the HTTP service tests: a real run directory (SentencePiece vocab + random tiny model) and a
way to run the FastAPI app under uvicorn on 127.0.0.1 in a background thread of the test process.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import uvicorn  # noqa: E402

from transformer import Transformer, TransformerConfig  # noqa: E402
from transformer.checkpoint import save_weights  # noqa: E402
from transformer.data.vocab import Vocab  # noqa: E402
from transformer.serve import ServeConfig, create_app  # noqa: E402
from transformer.translator import Translator  # noqa: E402

SUBJECTS = ["the cat", "a dog", "my neighbour", "the old man", "her sister", "our teacher", "the bird", "a child"]
VERBS = ["sees", "likes", "finds", "paints", "follows", "calls", "feeds", "watches"]
OBJECTS = ["the red house", "a small boat", "three apples", "the river", "seven green chairs", "the moon", "a letter"]
ENDINGS = [".", " today.", " again.", " in the morning.", " at night!", "?"]


def make_sentences(n: int, seed: int) -> list[str]:
    """``n`` synthetic English sentences, the same for the same seed."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(ENDINGS)}".capitalize()
        for _ in range(n)
    ]


@pytest.fixture(scope="session")
def sentences() -> Callable[[int, int], list[str]]:
    """``sentences(n, seed)``: n synthetic English sentences (the vocabulary was trained on seed 1)."""
    return make_sentences


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUN/vocab/joint.model (SentencePiece trained on 400 sentences) and RUN/best.safetensors (random tiny model)."""
    run = tmp_path_factory.mktemp("serve_run")
    vocab = Vocab.train(make_sentences(400, seed=1), run / "vocab" / "joint", vocab_size=120)
    torch.manual_seed(0)
    cfg = TransformerConfig(
        src_vocab_size=len(vocab),
        tgt_vocab_size=len(vocab),
        d_model=32,
        n_heads=2,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        dropout=0.0,
        share_embeddings=True,
    )
    save_weights(Transformer(cfg).eval(), run / "best.safetensors")
    return run


@pytest.fixture(scope="session")
def translator(run_dir: Path) -> Translator:
    return Translator.from_checkpoint(run_dir, device="cpu")


class RunningServer:
    """A uvicorn server on 127.0.0.1 in a thread of this process; ``url`` is its base URL."""

    def __init__(self, app) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.app = app

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "uvicorn did not shut down"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread in these modules (restored after each): on a shared, loaded CPU, tiny decode steps
    are many times faster without OpenMP spinning."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def serve() -> Callable[..., contextlib.AbstractContextManager[RunningServer]]:
    """``with serve(translator, max_queue=4) as srv:`` runs ``create_app(translator, ServeConfig(...))``."""

    @contextlib.contextmanager
    def start(translator, **limits) -> Iterator[RunningServer]:
        with RunningServer(create_app(translator, ServeConfig(**limits))) as srv:
            yield srv

    return start
