"""Running experiments and writing what they found: ``DIR/NAME/result.json`` (every number, the settings, the
seeds, the time, the versions), the figures beside it, and ``DIR/report.md`` gathering every result in DIR."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write
from . import EXPERIMENTS, experiment
from .common import Context, Result

RESULT = "result.json"
REPORT = "report.md"


def cpu_model() -> str:
    """``lscpu``'s model name, from /proc/cpuinfo (else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"python": platform.python_version(), "torch": torch.__version__, "transformer": version("transformer"),
            "cpu": cpu_model(), "torch_threads": str(torch.get_num_threads())}


def run_experiments(names: Sequence[str], out: Path, seeds: int = 3, quick: bool = False,
                    progress: Callable[[str], None] = lambda message: None, command: str | None = None,
                    report: Path | None = None) -> Path:
    """Run the experiments ``names`` (``"all"``: every one) into ``out``; the path of the report (``report``,
    else ``out/report.md``)."""
    names = list(EXPERIMENTS) if list(names) == ["all"] else list(dict.fromkeys(names))
    modules = {name: experiment(name) for name in names}  # unknown names fail before anything runs
    for name, module in modules.items():
        ctx = Context(out / name, list(range(seeds)), quick, lambda m, n=name: progress(f"[{n}] {m}"))
        progress(f"[{name}] {module.TITLE}")
        start = time.perf_counter()
        result: Result = module.run(ctx)
        seconds = time.perf_counter() - start
        record = {"name": name, "title": module.TITLE, "claim": result.claim, "setup": result.setup,
                  "table": result.table, "verdict": result.verdict, "figures": ctx.figures,
                  "numbers": result.numbers, "seeds": ctx.seeds, "quick": quick, "seconds": round(seconds, 1),
                  "command": command,
                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "versions": versions()}
        text = json.dumps(record, indent=1, default=_json) + "\n"
        atomic_write(out / name / RESULT, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        progress(f"[{name}] done in {seconds:.0f} s: {result.verdict}")
    return write_report(out, command, report)


def _json(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {value!r}")


def write_report(out: Path, command: str | None = None, report: Path | None = None) -> Path:
    """The report (``report``, else ``out/report.md``) of every ``out/NAME/result.json``, in the founding
    document's order; its figure links are relative to the report's folder."""
    report = Path(report) if report is not None else out / REPORT
    records = [json.loads((out / name / RESULT).read_text(encoding="utf-8")) for name in EXPERIMENTS
               if (out / name / RESULT).is_file()]
    lines = ["# Why each part is there: the founding document's claims, tested", ""]
    commands = list(dict.fromkeys([r.get("command") for r in records if r.get("command")] + [command]))
    commands = [c for c in commands if c]
    if commands:
        lines += ["Produced by:", "", "```", *commands, "```", ""]
    if records:
        v = records[0]["versions"]
        lines += [f"On {v['cpu']}, {v['torch_threads']} torch threads, torch {v['torch']}, Python {v['python']}. "
                  "Training results: mean and range over the seeds.", ""]
    for record in records:
        lines += _section(record, Path(os.path.relpath(out / record["name"], report.parent)))
    text = "\n".join(lines).rstrip() + "\n"
    atomic_write(report, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return report


def _section(record: dict[str, Any], folder: Path) -> list[str]:
    name = record["name"]
    seeds = ", ".join(map(str, record["seeds"]))
    lines = [f"## {record['title']} (`{name}`)", "", f"> {record['claim']}", "", record["setup"], "",
             f"Seeds {seeds}; {record['seconds']:.0f} s{' (--quick)' if record['quick'] else ''}.", ""]
    table = record["table"]
    if table:
        columns = list(table[0])
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in table]
        lines.append("")
    for figure in record["figures"]:
        lines += [f"![{name}: {Path(figure).stem}]({(folder / figure).as_posix()})", ""]
    lines += [f"Verdict: {record['verdict']}", ""]
    return lines
