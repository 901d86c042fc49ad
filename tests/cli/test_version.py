"""``transformer --version`` and ``python -m transformer --version``: the package's version, from its metadata."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

import transformer
import transformer.cli
from transformer.cli import main, package_version


def test_version_is_the_installed_metadata(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"transformer {importlib.metadata.version('transformer')}\n"
    assert transformer.__version__ == package_version() == importlib.metadata.version("transformer")


def test_python_dash_m_prints_the_same_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "transformer", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"transformer {package_version()}\n"


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [('[project]\nname = "transformer"\nversion = "9.8.7"\n', "9.8.7"),
     ('[project]\nname = "another"\nversion = "1.0"\n', "unknown"),
     ("not toml [", "unknown"),
     (None, "unknown")],
)
def test_without_metadata_a_source_trees_pyproject_states_it(monkeypatch, tmp_path, pyproject, expected) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    package = tmp_path / "src" / "transformer" / "cli"
    package.mkdir(parents=True)
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.setattr(transformer.cli, "__file__", str(package / "__init__.py"))
    assert package_version() == expected


def test_unknown_attributes_still_raise() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        transformer.no_such_name  # noqa: B018
