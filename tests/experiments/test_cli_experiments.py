"""``transformer experiments list`` and ``run``: every experiment listed with its claim; a run writes the report;
unknown names are refused before anything runs."""

from __future__ import annotations

from transformer.cli import main
from transformer.experiments import EXPERIMENTS


def test_list_names_every_experiment_and_its_claim(capsys) -> None:
    assert main(["experiments", "list"]) == 0
    out = capsys.readouterr().out
    for name in EXPERIMENTS:
        assert name in out
    assert "sqrt(d_k)" in out


def test_run_writes_the_report_and_unknown_names_are_refused(tmp_path, capsys) -> None:
    assert main(["experiments", "run", "scaling", "bogus", "--out", str(tmp_path)]) == 2
    assert "unknown experiment(s) bogus" in capsys.readouterr().err and not any(tmp_path.iterdir())
    assert main(["experiments", "run", "scaling", "--out", str(tmp_path), "--quick", "--seeds", "1"]) == 0
    err = capsys.readouterr().err
    assert "[scaling] done in" in err and (tmp_path / "report.md").is_file()
    assert "transformer experiments run scaling" in (tmp_path / "report.md").read_text()
