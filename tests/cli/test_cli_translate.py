"""``transformer translate``: the command's output is the Translator's, line-aligned, in both output formats."""

from __future__ import annotations

import pytest

from transformer import DecodeOptions
from transformer.cli.translate import format_translations
from transformer.ops.linear import int8_supported
from transformer.translator import Translation, Translator

LINES = ["twenty-one", "", "three hundred forty-two", "   ", "nine thousand nine hundred ninety-nine", "seven", ""]


@pytest.fixture(scope="module")
def translator(tiny_run) -> Translator:
    return Translator.from_checkpoint(tiny_run.run_dir, device="cpu")


def expected_best(translator: Translator, lines: list[str], **options) -> list[str]:
    """What the command must print: the Translator's best translation per non-blank line, "" for blank ones."""
    todo = [line for line in lines if line.strip()]
    best = iter(nbest[0].text for nbest in translator.translate(todo, DecodeOptions(**options)))
    return [next(best) if line.strip() else "" for line in lines]


def test_stdin_to_stdout_equals_translator_and_keeps_blank_lines(cli, tiny_run, translator) -> None:
    result = cli("translate", "--checkpoint", tiny_run.run_dir, "--device", "cpu", stdin="\n".join(LINES) + "\n")
    assert result.code == 0, result.err
    out = result.out.split("\n")
    assert out[-1] == ""  # every line ends with a newline
    assert out[:-1] == expected_best(translator, LINES, beam_size=4, length_penalty=0.6)
    assert len(out) - 1 == len(LINES)
    assert [i for i, line in enumerate(out[:-1]) if not line] == [1, 3, 6]


def test_greedy_and_max_len_options_reach_the_translator(cli, tiny_run, translator) -> None:
    lines = ["eight hundred", "four thousand twelve"]
    result = cli("translate", "-c", tiny_run.run_dir, "--beam-size", "1", "--max-len", "2", stdin="\n".join(lines))
    assert result.code == 0, result.err
    assert result.out.splitlines() == expected_best(translator, lines, beam_size=1, max_len=2)
    nbest = translator.translate(lines, DecodeOptions(beam_size=1, max_len=2))
    assert all(len(n[0].tokens) <= 2 for n in nbest)


@pytest.mark.parametrize("normalization", ["gnmt", "power"])
def test_n_best_format(cli, tiny_run, translator, normalization) -> None:
    result = cli(
        "translate",
        "-c",
        tiny_run.run_dir,
        "--beam-size",
        "3",
        "--n-best",
        "3",
        "--length-penalty",
        "1.0",
        "--length-normalization",
        normalization,
        "--precision",
        "float32",  # the translator fixture's
        stdin="\n".join(LINES),
    )
    assert result.code == 0, result.err
    rows = [line.split(" ||| ") for line in result.out.splitlines()]
    assert all(len(row) == 3 for row in rows)
    todo = [i for i, line in enumerate(LINES) if line.strip()]
    options = DecodeOptions(beam_size=3, n_best=3, length_penalty=1.0, length_normalization=normalization)
    nbest = translator.translate([LINES[i] for i in todo], options)
    expected = [[str(i), t.text, f"{t.score:.4f}"] for i, results in zip(todo, nbest) for t in results]
    assert rows == expected
    assert [int(row[0]) for row in rows] == [i for i in todo for _ in range(3)]  # 3 per non-blank line, by index


def test_format_translations_numbers_lines_from_the_chunk_start() -> None:
    nbest = [[Translation("a", [5], -0.5), Translation("b", [6], -1.25)], [], [Translation("c", [7], -2.0)]]
    assert format_translations(nbest, 1, 0) == "a\n\nc\n"
    assert format_translations(nbest, 2, 10) == "10 ||| a ||| -0.5000\n10 ||| b ||| -1.2500\n12 ||| c ||| -2.0000\n"


def test_files_in_and_out(cli, tiny_run, translator, tmp_path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\ufeff" + "\r\n".join(LINES) + "\r\n", encoding="utf-8")  # BOM and CRLF are tolerated
    out = tmp_path / "sub" / "out.txt"
    result = cli("translate", "-c", tiny_run.run_dir, "--input", src, "--output", out, "--batch-tokens", "16")
    assert result.code == 0, result.err
    assert result.out == ""
    assert out.read_text(encoding="utf-8").split("\n")[:-1] == expected_best(translator, LINES)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.txt"]  # no temporary file left behind


def test_failed_run_leaves_the_old_output_untouched(cli, tiny_run, tmp_path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"twenty\nthirty\n" * 3 + b"bad \xff byte\n")
    out = tmp_path / "out.txt"
    out.write_text("previous\n")
    result = cli("translate", "-c", tiny_run.run_dir, "-i", src, "-o", out)
    assert result.code == 2
    assert f"{src}:7: not valid UTF-8 (byte 0xff)" in result.err
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_safetensors_file_as_checkpoint(cli, tiny_run) -> None:
    by_dir = cli("translate", "-c", tiny_run.run_dir, stdin="sixty-six\nfour hundred\n")
    by_file = cli("translate", "-c", tiny_run.run_dir / "best.safetensors", stdin="sixty-six\nfour hundred\n")
    assert by_file.code == by_dir.code == 0
    assert by_file.out == by_dir.out
    assert len(by_file.out.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--beam-size", "2", "--n-best", "3"], "--n-best must be between 1 and --beam-size (2)"),
        (["--beam-size", "0"], "--beam-size must be >= 1"),
        (["--max-len", "0"], "--max-len must be >= 1"),
        (["--length-penalty", "-1"], "--length-penalty must be >= 0"),
        (["--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N"),
        (["--input", "/nonexistent/in.txt"], "cannot read /nonexistent/in.txt"),
    ],
)
def test_usage_errors(cli, tiny_run, args, message) -> None:
    result = cli("translate", "-c", tiny_run.run_dir, *args, stdin="one\n")
    assert result.code == 2
    assert message in result.err
    assert result.out == ""


def test_an_unknown_length_normalization_is_refused_by_the_parser(cli, tiny_run, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("translate", "-c", tiny_run.run_dir, "--length-normalization", "linear", stdin="one\n")
    assert exit_.value.code == 2 and "invalid choice: 'linear'" in capsys.readouterr().err


def test_missing_checkpoint(cli, tmp_path) -> None:
    result = cli("translate", "-c", tmp_path / "nothing", stdin="one\n")
    assert result.code == 2
    assert "cannot load" in result.err and "nothing" in result.err


def test_installed_command_pipes_stdin_to_stdout(run_subprocess, tiny_run, translator) -> None:
    lines = ["twelve", "", "five hundred five"]
    proc = run_subprocess(["translate", "--checkpoint", tiny_run.run_dir, "--device", "cpu"], "\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:-1] == expected_best(translator, lines)
    assert "translated 3 lines" in proc.stderr


@pytest.mark.skipif(not int8_supported(), reason="int8 inference does not run here (int8_supported)")
def test_int8_flag_translates_with_the_int8_model(cli, tiny_run) -> None:
    lines = ["twenty-one", "three hundred forty-two", "seven"]
    result = cli("translate", "-c", tiny_run.run_dir, "--int8", "--device", "cpu", stdin="\n".join(lines))
    assert result.code == 0, result.err
    translator = Translator.from_checkpoint(tiny_run.run_dir, device="cpu")
    translator.model.set_int8_inference()
    assert result.out.splitlines() == expected_best(translator, lines, beam_size=4, length_penalty=0.6)


@pytest.mark.parametrize("units", [True, False], ids=["int8 units", "none"])
def test_int8_says_when_the_cpu_gains_nothing_by_it(cli, tiny_run, monkeypatch, units: bool) -> None:
    """On a CPU without int8 units (AVX2-only x86) int8 still translates, and stderr says it is no faster."""
    import transformer.cli.common as common

    monkeypatch.setattr(common, "int8_units", lambda: units)
    result = cli("translate", "-c", tiny_run.run_dir, "--int8", "--device", "cpu", stdin="seven")
    assert result.code == 0, result.err
    assert ("has no int8 units" in result.err) is not units, result.err


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_precision_flag_translates_at_that_precision(cli, tiny_run, precision: str) -> None:
    from transformer.ops.linear import bf16_supported

    lines = ["twenty-one", "three hundred forty-two", "seven"]
    result = cli("translate", "-c", tiny_run.run_dir, "--precision", precision, "--device", "cpu",
                 stdin="\n".join(lines))
    supported = int8_supported() if precision == "int8" else bf16_supported()
    if not supported:
        assert result.code == 2 and f"--precision {precision}: " in result.err
        return
    assert result.code == 0, result.err
    translator = Translator.from_checkpoint(tiny_run.run_dir, device="cpu")
    translator.model.set_inference_precision(precision)
    assert result.out.splitlines() == expected_best(translator, lines, beam_size=4, length_penalty=0.6)


@pytest.mark.parametrize("flags", [[], ["--precision", "auto"]])
def test_the_default_precision_is_auto(cli, tiny_run, flags: list[str]) -> None:
    """Without --precision (or with auto): bfloat16 on a CPU with bf16 units, else float32, as auto_precision."""
    from transformer.ops.linear import auto_precision, bf16_supported

    assert auto_precision("cpu") == ("bfloat16" if bf16_supported() else "float32")
    assert auto_precision("cuda") == auto_precision("meta") == "float32"  # CPU-only precisions
    lines = ["twenty-one", "three hundred forty-two", "seven"]
    result = cli("translate", "-c", tiny_run.run_dir, *flags, "--device", "cpu", stdin="\n".join(lines))
    assert result.code == 0, result.err
    translator = Translator.from_checkpoint(tiny_run.run_dir, device="cpu")
    translator.model.set_inference_precision(auto_precision("cpu"))
    assert result.out.splitlines() == expected_best(translator, lines, beam_size=4, length_penalty=0.6)


def test_precision_and_int8_flags_exclude_each_other(cli, tiny_run, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli("translate", "-c", tiny_run.run_dir, "--precision", "float32", "--int8", stdin="seven")
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
