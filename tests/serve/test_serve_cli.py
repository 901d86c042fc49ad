"""``transformer serve``: its options, its errors, the message without the serve extra, and a real run of it
in a subprocess on 127.0.0.1 answering over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from transformer import DecodeOptions
from transformer.cli import main
from transformer.ops.linear import auto_precision


def test_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--checkpoint",
        "--host",
        "--port",
        "--max-batch-size",
        "--max-wait-ms",
        "--max-queue",
        "--max-text-tokens",
        "--max-texts",
        "--timeout",
        "--beam-size",
        "--max-beam-size",
        "--max-len",
    ):
        assert option in out
    assert "127.0.0.1" in out and "/translate" in out and "transformer[serve]" in out


@pytest.mark.parametrize("missing", ["uvicorn", "fastapi"])
def test_without_the_serve_extra_it_says_what_to_install(monkeypatch, capsys, run_dir, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    for module in ("transformer.serve", "transformer.serve.app"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    assert main(["serve", "--checkpoint", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "FastAPI and uvicorn" in err and "pip install 'transformer[serve]'" in err


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--max-batch-size", "0"], 2, "max_batch_size=0 must be >= 1"),
        (["--max-texts", "300"], 2, "max_texts=300 must be <= max_queue=256"),
        (["--beam-size", "20"], 2, "beam_size=20 must be <= max_beam_size=16"),
        (["--port", "70000"], 2, "--port must be in 0..65535"),
    ],
)
def test_bad_options_are_refused(capsys, run_dir, argv, code, message):
    assert main(["serve", "--checkpoint", str(run_dir), *argv]) == code
    assert message in capsys.readouterr().err


def test_missing_checkpoint_is_an_error(capsys, tmp_path):
    assert main(["serve", "--checkpoint", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_int8_flag_serves_the_int8_model(monkeypatch, run_dir):
    """--int8 reaches the model the app serves (uvicorn.run replaced: the HTTP path is tested below)."""
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    assert main(["serve", "--checkpoint", str(run_dir), "--device", "cpu", "--int8", "--port", "0"]) == 0
    translator = served["app"].state.translator
    assert translator.model.int8_inference


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_answers_over_http(run_dir, translator):
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "transformer",
        "serve",
        "--checkpoint",
        str(run_dir),
        "--port",
        str(port),
        "--max-len",
        "10",
        "--beam-size",
        "2",
        "--device",
        "cpu",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"transformer serve exited early:\n{proc.stdout.read()}"
            try:
                state = httpx.get(f"{url}/health", timeout=5).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "transformer serve did not start within 90 s"
                time.sleep(0.2)
        assert state["status"] == "ok" and state["limits"]["beam_size"] == 2 and state["limits"]["max_len"] == 10
        assert state["precision"] == auto_precision("cpu")  # no --precision: auto
        texts = ["The cat sees a small boat.", "Our teacher calls the moon again."]
        response = httpx.post(f"{url}/translate", json={"texts": texts}, timeout=60)
        assert response.status_code == 200, response.text
        translator.model.set_inference_precision(state["precision"])
        try:
            expected = translator.translate(texts, DecodeOptions(beam_size=2, max_len=10))
        finally:
            translator.model.set_inference_precision("float32")
        for result, exp in zip(response.json()["translations"], expected):
            assert result["text"] == exp[0].text
            assert result["score"] == pytest.approx(exp[0].score, abs=1e-4)
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
