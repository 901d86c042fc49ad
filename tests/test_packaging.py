"""The package as a user gets it, checked rather than assumed.

``python -m build`` makes the sdist, then the wheel from the sdist (so a file the sdist leaves out is missing
from the wheel too); the wheel must hold every file of ``src/transformer`` (the demo's settings, the web page's
static files, any added later). Installed, not editable, into a fresh virtualenv with its dependencies, and run
from a directory outside the checkout: ``transformer --version``, ``transformer demo --quick`` and the first
of the demo's "Try next" lines, typed as printed.

About a minute, most of it pip installing torch into the new virtualenv: pinned to this run's version, which on
this project's machines is a CPU build on disk (as the Makefile's TORCH_PIN).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "transformer"

pytestmark = pytest.mark.slow


def _run(args: list, cwd: Path | None = None, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _package_files() -> set[str]:
    """Every file of the package in the source tree, as the wheel names it (``transformer/demo/demo.toml``)."""
    files = (p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(PACKAGE.parent).as_posix() for p in files}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built as a release would be."""
    pytest.importorskip("build", reason="`python -m build` comes with the dev extra: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", out, ROOT])
    (sdist,), (wheel,) = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return {"sdist": sdist, "wheel": wheel}


def test_the_wheel_and_the_sdist_hold_every_file_of_the_package(dist) -> None:
    expected = _package_files()
    assert "transformer/demo/demo.toml" in expected and "transformer/cli/__init__.py" in expected
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        in_wheel = {name for name in wheel.namelist() if name.startswith("transformer/")}
    assert not expected - in_wheel, f"missing from the wheel: {sorted(expected - in_wheel)}"
    version = importlib.metadata.version("transformer")
    with tarfile.open(dist["sdist"]) as sdist:
        in_sdist = {name.removeprefix(f"transformer-{version}/") for name in sdist.getnames()}
    missing = {f"src/{name}" for name in expected} - in_sdist
    assert not missing, f"missing from the sdist: {sorted(missing)}"
    assert {"README.md", "pyproject.toml"} <= in_sdist


def test_the_wheel_installs_and_runs_outside_the_checkout(dist, tmp_path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    python, command = venv / "bin" / "python", venv / "bin" / "transformer"
    torch_pin = f"torch=={torch.__version__.split('+')[0]}"  # the public version: 2.13.0 matches 2.13.0+cpu
    _run([python, "-m", "pip", "install", "-q", dist["wheel"], torch_pin])
    _run([python, "-m", "pip", "check"])

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"OMP_NUM_THREADS": "1"}
    # tmp_path is outside the checkout: nothing of src/ can be imported by accident
    imported = _run([python, "-c", "import transformer; print(transformer.__file__)"], tmp_path, env=env).stdout
    assert Path(imported.strip()).is_relative_to(venv), imported

    version = importlib.metadata.version("transformer")
    assert _run([command, "--version"], tmp_path, env=env).stdout == f"transformer {version}\n"
    assert _run([python, "-m", "transformer", "--version"], tmp_path, env=env).stdout == f"transformer {version}\n"

    demo = _run([command, "demo", "--quick", "--run-dir", "demo"], tmp_path, env=env).stdout
    assert "Exact-match accuracy on " in demo, demo
    # the virtualenv is not on the PATH (as after `make demo`): the demo names its transformer by its path
    translate = next(line.strip() for line in demo.splitlines() if "translate --checkpoint" in line)
    assert translate.endswith("| venv/bin/transformer translate --checkpoint demo"), demo
    assert "(or `. venv/bin/activate` first, and then plain `transformer`)" in demo.splitlines(), demo
    out = _run(["bash", "-c", f"set -o pipefail; {translate}"], tmp_path, env=env).stdout
    assert len(out.splitlines()) == 1, out
