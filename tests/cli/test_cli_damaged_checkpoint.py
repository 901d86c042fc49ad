"""A truncated or corrupted checkpoint: every command that loads one says so in one line that names the file,
exits with 2 (1 for ``attention``, whose load and drawing errors are 1), and writes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def damaged_run(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run whose best.safetensors lost its second half (a copy cut short, a full disk)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run.run_dir, run)
    best = run / "best.safetensors"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    return run


def assert_one_line_naming(result, path: Path, command: str, code: int = 2) -> None:
    assert result.code == code, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err  # no traceback
    assert lines[0].startswith(f"transformer {command}: error: "), lines[0]
    assert str(path) in lines[0] and "truncated or corrupted" in lines[0], lines[0]


def test_translate(cli, damaged_run, tmp_path) -> None:
    out = tmp_path / "out.txt"
    result = cli("translate", "-c", damaged_run, "-o", out, stdin="twenty-one\n")
    assert_one_line_naming(result, damaged_run / "best.safetensors", "translate")
    assert not out.exists()


def test_translate_a_damaged_file_named_directly(cli, damaged_run) -> None:
    result = cli("translate", "-c", damaged_run / "best.safetensors", stdin="twenty-one\n")
    assert_one_line_naming(result, damaged_run / "best.safetensors", "translate")


def test_evaluate(cli, damaged_run, tiny_run, tmp_path) -> None:
    out = tmp_path / "hyps.txt"
    result = cli("evaluate", "-c", damaged_run, "--src", tiny_run.test_src, "--ref", tiny_run.test_ref, "-o", out)
    assert_one_line_naming(result, damaged_run / "best.safetensors", "evaluate")
    assert result.out == "" and not out.exists()


def test_attention(cli, damaged_run, tmp_path) -> None:
    result = cli("attention", "--checkpoint", damaged_run, "--src", "twenty-one", "--out", tmp_path / "pictures")
    assert_one_line_naming(result, damaged_run / "best.safetensors", "attention", code=1)
    assert not (tmp_path / "pictures").exists()


def test_serve(cli, damaged_run, monkeypatch) -> None:
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server must not start"))
    result = cli("serve", "--checkpoint", damaged_run)
    assert_one_line_naming(result, damaged_run / "best.safetensors", "serve")


def test_export(cli, damaged_run, tmp_path) -> None:
    result = cli("export", damaged_run, tmp_path / "ct2")
    assert_one_line_naming(result, damaged_run / "best.safetensors", "export")
    assert not (tmp_path / "ct2").exists()


def test_average(cli, damaged_run, tmp_path) -> None:
    step = sorted((damaged_run / "checkpoints").glob("step_*.safetensors"))[-1]
    step.write_bytes(step.read_bytes()[:100])
    result = cli("average", damaged_run, "--last", "2", "-o", tmp_path / "avg.safetensors")
    assert_one_line_naming(result, step, "average")
    assert not (tmp_path / "avg.safetensors").exists()


@pytest.mark.parametrize("which", ["weights", "state"])
def test_train_resume(cli, damaged_run, which) -> None:
    step = sorted((damaged_run / "checkpoints").glob(f"step_*.{'safetensors' if which == 'weights' else 'state.pt'}"))
    damaged = step[-1]
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 3])
    result = cli("train", "--run-dir", damaged_run, "--resume")
    assert_one_line_naming(result, damaged, "train")
