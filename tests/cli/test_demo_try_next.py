"""The demo's "Try next" lines work as printed: ``transformer`` where the one on the PATH is this installation's,
else the path that works (a virtualenv not activated, as after ``make demo``), with how to activate it."""

from __future__ import annotations

import io
import os
import shlex
import sys
from pathlib import Path

from transformer.cli.demo import report, transformer_command
from transformer.demo.run import DemoResult


def _scripts(root: Path, activate: bool = True) -> Path:
    """A virtualenv's bin/ with a ``transformer`` script (and ``activate``)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "transformer").write_text("#!/bin/sh\n", encoding="utf-8")
    (bin_dir / "transformer").chmod(0o755)
    if activate:
        (bin_dir / "activate").write_text("# sourced\n", encoding="utf-8")
    return bin_dir


def test_plain_transformer_where_ours_is_first_on_the_path(tmp_path) -> None:
    scripts = _scripts(tmp_path / ".venv")
    other = _scripts(tmp_path / "other")
    path = os.pathsep.join([str(scripts), str(other)])
    assert transformer_command(scripts, path, tmp_path) == ("transformer", None)


def test_a_link_to_ours_on_the_path_is_ours(tmp_path) -> None:
    scripts = _scripts(tmp_path / ".venv")
    linked = tmp_path / "links"
    linked.mkdir()
    (linked / "transformer").symlink_to(scripts / "transformer")
    assert transformer_command(scripts, str(linked), tmp_path) == ("transformer", None)


def test_a_virtualenv_not_activated_is_typed_by_its_path(tmp_path) -> None:
    scripts = _scripts(tmp_path / ".venv")
    other = _scripts(tmp_path / "pyenv-shims")  # another transformer first on the PATH: not ours
    assert transformer_command(scripts, str(other), tmp_path) == (
        ".venv/bin/transformer", ". .venv/bin/activate")
    assert transformer_command(scripts, "", tmp_path) == (".venv/bin/transformer", ". .venv/bin/activate")


def test_elsewhere_the_path_is_absolute_and_quoted(tmp_path) -> None:
    scripts = _scripts(tmp_path / "my venv")
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    command, activate = transformer_command(scripts, "", elsewhere)
    assert shlex.split(command) == [str(scripts / "transformer")]
    assert activate is not None and shlex.split(activate) == [".", str(scripts / "activate")]


def test_in_the_scripts_directory_itself_the_command_keeps_a_slash(tmp_path) -> None:
    scripts = _scripts(tmp_path / ".venv", activate=False)
    assert transformer_command(scripts, "", scripts) == ("./transformer", None)


def test_not_installed_runs_this_interpreter(tmp_path) -> None:
    command, activate = transformer_command(tmp_path / "no-scripts", "", tmp_path)
    assert shlex.split(command) == [sys.executable, "-m", "transformer"] and activate is None


def _result(run_dir: Path) -> DemoResult:
    return DemoResult(run_dir=run_dir, accuracy=1.0, n_test=1, samples=[("one", "eins", "eins")], mistakes=[],
                      model="the checkpoint", steps=1, train_seconds=1.0, total_seconds=1.0, tokens_per_s=None,
                      scores={})


def test_report_prints_the_command_and_how_to_activate(tmp_path) -> None:
    out = io.StringIO()
    report(_result(tmp_path / "run"), out, command=".venv/bin/transformer", activate=". .venv/bin/activate")
    lines = out.getvalue().splitlines()
    run = shlex.quote(str(tmp_path / "run"))
    assert f"  .venv/bin/transformer attention --checkpoint {run} --src 'twenty-one'" in lines
    assert any(line.endswith(f"| .venv/bin/transformer translate --checkpoint {run}") for line in lines)
    assert lines[-1] == "(or `. .venv/bin/activate` first, and then plain `transformer`)"


def test_report_without_a_virtualenv_to_activate_says_nothing_of_it(tmp_path) -> None:
    out = io.StringIO()
    report(_result(tmp_path / "run"), out)
    assert "activate" not in out.getvalue()
    assert out.getvalue().splitlines()[-1].startswith("  transformer evaluate --checkpoint ")
