"""The built-in demo: learn to write numbers in German, from English number words, in minutes on a CPU.

``run_demo(run_dir)`` does what a user would do with the separate commands, with the settings of the
package's ``demo/demo.toml``:

1. ``make_demo_corpus``: a synthetic parallel corpus, ``"twenty-one"`` -> ``"einundzwanzig"``, whose
   validation and test numbers never occur in training (``RUN/data/raw``);
2. ``prepare``: one joint subword vocabulary and the encoded corpus (``RUN/data``);
3. ``train``: a small Transformer (``RUN``: checkpoints, ``best.safetensors``, ``vocab/``, metrics);
4. average the last checkpoints (as §6.1 does) and keep the average as ``RUN/best.safetensors`` if it
   translates more validation numbers exactly than the checkpoint with the best validation loss;
5. translate the held-out test numbers with it and count the exact matches.

``RUN`` is then an ordinary run directory for ``transformer translate``/``evaluate``/``attention``, and
``RUN/demo.json`` records the outcome. Running the demo again in the same directory starts it over; a
directory holding a run that the demo did not make is never touched.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..decoding import DecodeOptions
    from ..evaluation import Evaluation
    from ..run_config import RunConfig

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

log = logging.getLogger(__name__)

MARKER = "demo.json"
MAX_MISTAKES = 5
AVERAGE = "average.safetensors"
# Everything the demo writes in its run directory (removed when the demo starts over).
_DEMO_FILES = (
    "data",
    "vocab",
    "checkpoints",
    "best.safetensors",
    "config.toml",
    "metrics.jsonl",
    "train.log",
    "tensorboard",
    AVERAGE,
    MARKER,
)


@dataclass(frozen=True)
class DemoSettings:
    """The ``[demo]`` table of ``demo.toml``: the corpus, its vocabulary, and the ``--quick`` variant."""

    max_number: int
    n_train: int
    n_valid: int
    n_test: int
    vocab_size: int
    model_type: str
    samples: int
    average_last: int
    quick_n_train: int
    quick_n_valid: int
    quick_n_test: int
    quick_steps: int


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured.

    Attributes:
        run_dir: the run directory (a checkpoint that ``transformer translate --checkpoint`` takes).
        accuracy: exact-match rate (0..1) of the beam-search translations of the held-out test numbers.
        n_test: test numbers translated.
        samples: (English, model's German, reference German) for test numbers of every length, shortest first.
        mistakes: the same for (up to ``MAX_MISTAKES``) test numbers the model got wrong.
        model: which weights were measured (and are ``RUN/best.safetensors``): see :func:`choose_model`.
        steps: optimizer steps trained.
        train_seconds: wall time of training (validation and checkpoints included).
        total_seconds: wall time of the whole demo (corpus, vocabulary, training, translation).
        tokens_per_s: target tokens per second of the training steps.
        scores: the test set's ``transformer.evaluation.evaluate`` scores (BLEU, chrF, exact match, speed).
        precision: of the linear layers when translating, the command line's default here (``auto_precision``).
    """

    run_dir: Path
    accuracy: float
    n_test: int
    samples: list[tuple[str, str, str]]
    mistakes: list[tuple[str, str, str]]
    model: str
    steps: int
    train_seconds: float
    total_seconds: float
    tokens_per_s: float | None
    scores: dict[str, Any]
    precision: str = "float32"


def pick_samples(triples: list[tuple[str, str, str]], n: int) -> list[tuple[str, str, str]]:
    """``n`` of ``triples`` spread evenly over their source lengths, shortest first (all of them if fewer)."""
    by_length = sorted(triples, key=lambda triple: (len(triple[0]), triple[0]))
    if n >= len(by_length):
        return by_length
    if n <= 1:
        return by_length[:n]
    return [by_length[round(i * (len(by_length) - 1) / (n - 1))] for i in range(n)]


def load_demo_toml() -> tuple[DemoSettings, dict[str, Any]]:
    """The package's ``demo.toml``: its ``[demo]`` settings and the rest (a run config, as a TOML dict)."""
    text = resources.files("transformer.demo").joinpath("demo.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    return DemoSettings(**raw.pop("demo")), raw


def run_config(run_part: dict[str, Any], overrides: list[str]) -> RunConfig:
    """``load_config`` of the run part of ``demo.toml`` with ``overrides``."""
    import tomli_w

    from ..run_config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo.toml"
        path.write_text(tomli_w.dumps(run_part), encoding="utf-8")
        return load_config(path, overrides)


def prepare_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` ready for a fresh demo: remove an earlier demo's files; refuse another run's.

    Raises:
        FileExistsError: ``run_dir`` holds checkpoints but no ``demo.json`` (a run the demo did not make).
    """
    if (run_dir / MARKER).exists():
        log.info("%s holds an earlier demo: starting over", run_dir)
        for name in _DEMO_FILES:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    elif (run_dir / "checkpoints").exists() or (run_dir / "best.safetensors").exists():
        raise FileExistsError(
            f"{run_dir} already holds a training run that the demo did not make; choose another --run-dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)


def _write_marker(run_dir: Path, record: dict[str, Any]) -> None:
    (run_dir / MARKER).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_data(data_dir: Path, settings: DemoSettings, quick: bool, seed: int) -> dict[str, tuple[Path, Path]]:
    """Write the corpus to ``data_dir/raw`` and prepare it in ``data_dir``: ``{split: (English, German)}``."""
    from ..data import prepare
    from .numbers import make_demo_corpus

    files = make_demo_corpus(
        data_dir / "raw",
        n_train=settings.quick_n_train if quick else settings.n_train,
        n_valid=settings.quick_n_valid if quick else settings.n_valid,
        n_test=settings.quick_n_test if quick else settings.n_test,
        max_number=settings.max_number,
        seed=seed,
    )
    prepare(
        *files["train"],
        data_dir,
        *files["valid"],
        vocab_size=settings.vocab_size,
        joint=True,
        model_type=settings.model_type,
        seed=seed,
    )
    return files


def exact_match_of(weights: Path, files: tuple[Path, Path], decode: DecodeOptions) -> tuple[float, Evaluation]:
    """Exact-match rate (and the whole evaluation) of the weights file ``weights`` on (English, German) files, at
    the precision ``transformer translate`` and ``evaluate`` use by default (``auto_precision``)."""
    from ..data import read_lines
    from ..evaluation import evaluate
    from ..ops.linear import auto_precision
    from ..translator import Translator

    translator = Translator.from_checkpoint(weights)
    translator.model.set_inference_precision(auto_precision(translator.device))
    evaluation = evaluate(translator, read_lines(files[0]), read_lines(files[1]), decode)
    evaluation.scores["precision"] = translator.model.inference_precision
    return evaluation.scores["exact_match"], evaluation


def choose_model(run_dir: Path, n_average: int, valid: tuple[Path, Path], decode: DecodeOptions) -> str:
    """Average the last ``n_average`` checkpoints (§6.1 averages the last 5) and keep, as ``RUN/best.safetensors``,
    whichever of the average and the best checkpoint translates more validation numbers exactly.

    Returns a description of the kept weights. With fewer than two checkpoints there is nothing to average.
    """
    from ..checkpoint import read_metadata
    from ..io import atomic_write
    from ..run_dir import BEST, list_checkpoints
    from ..training.average import average_checkpoints

    found = list_checkpoints(run_dir)[-n_average:]
    best = run_dir / BEST
    best_step = read_metadata(best).get("step")
    if n_average < 2 or len(found) < 2:
        return f"the checkpoint with the best validation loss (step {best_step})"
    steps = ", ".join(str(step) for step, _ in found)
    averaged = average_checkpoints([path for _, path in found], run_dir / AVERAGE)
    best_acc, _ = exact_match_of(best, valid, decode)
    average_acc, _ = exact_match_of(averaged, valid, decode)
    log.info(
        "validation exact match: %.1f%% best checkpoint (step %s), %.1f%% average of steps %s",
        100 * best_acc,
        best_step,
        100 * average_acc,
        steps,
    )
    if average_acc >= best_acc:
        atomic_write(best, lambda tmp: shutil.copyfile(averaged, tmp))
        return (
            f"the average of the checkpoints of steps {steps} "
            f"({100 * average_acc:.1f}% of the validation numbers right, the best checkpoint {100 * best_acc:.1f}%)"
        )
    return (
        f"the checkpoint with the best validation loss, step {best_step} ({100 * best_acc:.1f}% of the "
        f"validation numbers right, the average of steps {steps} {100 * average_acc:.1f}%)"
    )


def run_demo(
    run_dir: str | Path = "runs/demo", steps: int | None = None, quick: bool = False, seed: int = 0
) -> DemoResult:
    """Build the corpus, prepare it, train the demo model in ``run_dir`` and measure it on held-out numbers.

    Args:
        run_dir: the run directory (created; an earlier demo in it is replaced).
        steps: optimizer steps; None: ``demo.toml``'s ``train.max_steps`` (``quick_steps`` with ``quick``).
        quick: a small corpus and a few steps: checks that everything works, learns little.
        seed: seed of the corpus, the vocabulary and training.
    """
    from ..data import read_lines
    from ..run_dir import BEST
    from ..training.loop import train

    started = time.perf_counter()
    run_dir = Path(run_dir)
    settings, run_part = load_demo_toml()
    prepare_run_dir(run_dir)
    _write_marker(run_dir, {"status": "running", "quick": quick, "seed": seed})
    files = build_data(run_dir / "data", settings, quick, seed)

    overrides = [f"data.dir={json.dumps(str(run_dir / 'data'))}", f"train.seed={seed}"]
    if steps is not None or quick:
        overrides.append(f"train.max_steps={steps or settings.quick_steps}")
    cfg = run_config(run_part, overrides)
    log.info("training for %d steps (progress every %d steps)", cfg.train.max_steps, cfg.train.log_every)
    train_started = time.perf_counter()
    summary = train(cfg, run_dir)
    train_seconds = time.perf_counter() - train_started

    model = choose_model(run_dir, settings.average_last, files["valid"], cfg.decode)
    log.info("translating the held-out test numbers with %s", model)
    accuracy, evaluation = exact_match_of(run_dir / BEST, files["test"], cfg.decode)
    sources, references = read_lines(files["test"][0]), read_lines(files["test"][1])
    triples = list(zip(sources, evaluation.hypotheses, references))
    result = DemoResult(
        run_dir=run_dir,
        accuracy=accuracy,
        n_test=len(triples),
        samples=pick_samples(triples, settings.samples),
        mistakes=[(src, hyp, ref) for src, hyp, ref in triples if hyp != ref][:MAX_MISTAKES],
        model=model,
        steps=summary["step"],
        train_seconds=train_seconds,
        total_seconds=time.perf_counter() - started,
        tokens_per_s=summary["tokens_per_s"],
        scores=evaluation.scores,
        precision=evaluation.scores["precision"],
    )
    record = {k: v for k, v in asdict(result).items() if k != "run_dir"}
    _write_marker(run_dir, {"status": "done", "quick": quick, "seed": seed, **record})
    return result
