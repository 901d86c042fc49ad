"""The Makefile's virtualenv, the front door of ``make demo`` and ``make test``: made once from ``PYTHON``, reused,
made anew for another Python, and where Python cannot make one (Debian's python3 without python3-venv), a
message that names the package to install instead of a traceback or a half-made .venv.

Each test points ``VENV`` at a temporary directory, so the checkout's own .venv is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no `make` on this machine")


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "-C", str(ROOT), "--no-print-directory", *args], capture_output=True, text=True,
                          env=clean | (env or {}), timeout=300)


def base_python() -> str:
    """The interpreter the Makefile records for this one (a virtualenv's is its base Python's)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def test_without_ensurepip_the_message_names_the_package(tmp_path) -> None:
    hidden = tmp_path / "hide" / "ensurepip"  # shadows the standard library's, as if python3-venv were missing
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('No module named ensurepip')\n", encoding="utf-8")
    venv = tmp_path / "venv"
    result = make("demo", f"PYTHON={sys.executable}", f"VENV={venv}", env={"PYTHONPATH": str(hidden.parent)})
    assert result.returncode != 0
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"sudo apt install python{version}-venv" in result.stderr, result.stderr
    assert "python3-venv" in result.stderr and "Traceback" not in result.stderr + result.stdout
    assert not venv.exists()  # nothing half-made to trip the next run


def test_a_python_that_does_not_run_is_named(tmp_path) -> None:
    result = make("venv", "PYTHON=/nonexistent/python3", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0 and "PYTHON=/nonexistent/python3 does not run" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_the_virtualenv_is_made_once_and_made_anew_for_another_python(tmp_path) -> None:
    venv = tmp_path / "venv"
    first = make("venv", f"PYTHON={sys.executable}", f"VENV={venv}")
    assert first.returncode == 0, first.stderr
    assert (venv / ".made-from").read_text(encoding="utf-8").strip() == base_python()
    assert subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True).returncode == 0

    again = make("venv", f"PYTHON={sys.executable}", f"VENV={venv}")
    assert again.returncode == 0 and "-m venv" not in again.stdout, again.stdout

    (venv / ".made-from").write_text("/another/python3\n", encoding="utf-8")
    anew = make("venv", f"PYTHON={sys.executable}", f"VENV={venv}")
    assert anew.returncode == 0, anew.stderr
    assert f"was made from /another/python3; PYTHON={sys.executable} is {base_python()}: making it anew" in anew.stdout
    assert (venv / ".made-from").read_text(encoding="utf-8").strip() == base_python()


def test_a_directory_that_is_not_a_virtualenv_is_left_alone(tmp_path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n", encoding="utf-8")
    result = make("venv", f"PYTHON={sys.executable}", f"VENV={mine}")
    assert result.returncode != 0 and "is not a virtualenv" in result.stderr
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me\n"


def test_every_target_runs_the_virtualenvs_python(tmp_path) -> None:
    """With the stamps in place (and newer than pyproject.toml), ``make -n`` shows what each target runs."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
    for stamp, text in ((".made-from", base_python() + "\n"), (".installed", ""), (".installed-dev", "")):
        (venv / stamp).write_text(text, encoding="utf-8")
    targets = ["demo", "test", "lint", "bench", "dist", "multi30k"]
    result = make("-n", *targets, f"PYTHON={sys.executable}", f"VENV={venv}", "TCMALLOC=")
    assert result.returncode == 0, result.stderr
    # a recipe's first lines (continuations are indented; multi30k's loop runs the same command)
    commands = [line for line in result.stdout.splitlines()
                if line and not line[0].isspace() and not line.startswith(("for ", "done"))]
    assert len(commands) >= len(targets)
    outside = [line for line in commands if not line.startswith(f"{venv}/bin/python ")]
    assert not outside, "\n".join(outside)
