"""The translation service over real HTTP on 127.0.0.1: uvicorn in a thread, httpx as the client.

The translator is a real ``Translator`` (SentencePiece vocab + random tiny model from a run directory); the
503/504/500 tests wrap it in translators that block, sleep or fail on cue, so they are deterministic.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time

import httpx
import pytest

from transformer import DecodeOptions
from transformer.serve import ServeConfig, create_app

DEFAULTS = DecodeOptions(max_len=10)  # the server's decoding defaults: the paper's, and at most 10 tokens
LIMITS = dict(max_text_tokens=40, max_texts=8, max_beam_size=8, decode=DEFAULTS)


@pytest.fixture(scope="module")
def server(serve, translator):
    with serve(translator, **LIMITS) as srv:
        yield srv


def post(srv, timeout: float = 30, **kwargs) -> httpx.Response:
    return httpx.post(f"{srv.url}/translate", timeout=timeout, **kwargs)


def health(srv) -> dict:
    response = httpx.get(f"{srv.url}/health", timeout=10)
    assert response.status_code == 200
    return response.json()


def wait_for(srv, condition, timeout: float = 10.0) -> dict:
    """Poll /health until ``condition(health)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        state = health(srv)
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"condition never held; last /health: {state}"
        time.sleep(0.01)


def assert_same(result: dict, expected, n_best: int = 1) -> None:
    """One response item against the translator's n-best list for the same text."""
    assert result["text"] == expected[0].text
    assert result["score"] == pytest.approx(expected[0].score, abs=1e-4)
    if n_best == 1:
        assert "n_best" not in result
    else:
        assert [h["text"] for h in result["n_best"]] == [t.text for t in expected]
        assert [h["score"] for h in result["n_best"]] == pytest.approx([t.score for t in expected], abs=1e-4)


# -- translations --------------------------------------------------------------------------------------


def test_single_text_equals_translator(server, translator, sentences):
    text = sentences(1, 3)[0]
    response = post(server, json={"text": text})
    assert response.status_code == 200, response.text
    (result,) = response.json()["translations"]
    assert_same(result, translator.translate([text], DEFAULTS)[0])


def test_many_texts_with_options_equal_translator(server, translator, sentences):
    texts = sentences(5, 4)
    options = dict(beam_size=3, n_best=3, length_penalty=1.0, length_normalization="power")
    response = post(server, json={"texts": texts, **options})
    assert response.status_code == 200, response.text
    results = response.json()["translations"]
    expected = translator.translate(texts, DEFAULTS.override(**options))
    assert len(results) == len(texts)
    for result, exp in zip(results, expected):
        assert_same(result, exp, n_best=3)
        assert result["n_best"][0]["score"] >= result["n_best"][-1]["score"]


def test_greedy(server, translator, sentences):
    texts = sentences(3, 5)
    response = post(server, json={"texts": texts, "beam_size": 1})
    assert response.status_code == 200, response.text
    expected = translator.translate(texts, DEFAULTS.override(beam_size=1))
    for result, exp in zip(response.json()["translations"], expected):
        assert_same(result, exp)


def test_translations_equal_transformer_translate(server, run_dir, sentences, tmp_path, capsys):
    """The server answers what the ``transformer translate`` command prints, 1-best and n-best."""
    from transformer.cli import main

    texts = sentences(6, 10)
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    common = ["translate", "--checkpoint", str(run_dir), "--input", str(tmp_path / "in.txt"), "--device", "cpu",
              "--precision", "float32"]  # the server fixture's translator's
    assert main([*common, "--max-len", "10"]) == 0
    printed = capsys.readouterr().out.splitlines()
    response = post(server, json={"texts": texts})
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["translations"]] == printed

    assert main([*common, "--max-len", "10", "--beam-size", "3", "--n-best", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    response = post(server, json={"texts": texts, "beam_size": 3, "n_best": 2})
    assert response.status_code == 200
    served = [
        f"{i} ||| {h['text']} ||| {h['score']:.4f}"
        for i, r in enumerate(response.json()["translations"])
        for h in r["n_best"]
    ]
    assert served == printed


def test_health_and_docs(server):
    state = health(server)
    assert state["status"] == "ok" and state["model_loaded"] is True and state["device"] == "cpu"
    assert state["precision"] == "float32"
    assert state["queue_depth"] == 0 and state["in_flight"] == 0
    assert state["limits"]["max_texts"] == 8 and state["limits"]["max_len"] == 10
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert set(spec["paths"]) >= {"/translate", "/health"}
    request = spec["components"]["schemas"]["TranslateRequest"]["properties"]
    beam = next(s for s in request["beam_size"]["anyOf"] if s.get("type") == "integer")
    assert (beam["minimum"], beam["maximum"]) == (1, 8)  # the server's limits, in the schema
    assert "source tokens" in request["texts"]["description"]
    assert "422" in spec["paths"]["/translate"]["post"]["responses"]
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# -- bad input: one JSON error shape -------------------------------------------------------------------

BAD_INPUTS = [
    # id, httpx.post kwargs, status, code, field, words the message must contain
    ("empty", dict(json={"text": ""}), 422, "empty_text", "text", ["text is empty"]),
    ("blank", dict(json={"text": "  \t "}), 422, "empty_text", "text", ["empty"]),
    ("empty-in-list", dict(json={"texts": ["A dog.", ""]}), 422, "empty_text", "texts[1]", ["texts[1] is empty"]),
    ("too-long-chars", dict(json={"text": "a" * 2561}), 422, "text_too_long", "text", ["2561 characters", "2560"]),
    ("too-many", dict(json={"texts": ["A dog."] * 9}), 422, "invalid_request", "texts", ["at most 8 items", "9"]),
    ("no-texts", dict(json={"texts": []}), 422, "invalid_request", "texts", ["at least 1 item"]),
    ("neither", dict(json={}), 422, "invalid_request", "text", ["exactly one of `text` or `texts`", "neither"]),
    ("both", dict(json={"text": "a", "texts": ["b"]}), 422, "invalid_request", "text", ["exactly one", "both"]),
    (
        "beam-0",
        dict(json={"text": "a", "beam_size": 0}),
        422,
        "invalid_request",
        "beam_size",
        ["greater than or equal to 1"],
    ),
    (
        "beam-big",
        dict(json={"text": "a", "beam_size": 9}),
        422,
        "invalid_request",
        "beam_size",
        ["less than or equal to 8", "9"],
    ),
    ("beam-str", dict(json={"text": "a", "beam_size": "4"}), 422, "invalid_request", "beam_size", ["valid integer"]),
    ("beam-float", dict(json={"text": "a", "beam_size": 2.5}), 422, "invalid_request", "beam_size", ["integer"]),
    (
        "nbest>beam",
        dict(json={"text": "a", "beam_size": 2, "n_best": 3}),
        422,
        "invalid_request",
        "n_best",
        ["n_best=3", "beam_size=2"],
    ),
    ("nbest>default", dict(json={"text": "a", "n_best": 5}), 422, "invalid_request", "n_best", ["beam_size=4"]),
    ("alpha<0", dict(json={"text": "a", "length_penalty": -1}), 422, "invalid_request", "length_penalty", ["greater"]),
    (
        "alpha-nan",
        dict(content=b'{"text": "a", "length_penalty": NaN}', headers={"content-type": "application/json"}),
        422,
        "invalid_request",
        "length_penalty",
        ["finite"],
    ),
    (
        "normalization",
        dict(json={"text": "a", "length_normalization": "linear"}),
        422,
        "invalid_request",
        "length_normalization",
        ["gnmt", "power"],
    ),
    ("text-number", dict(json={"text": 5}), 422, "invalid_request", "text", ["valid string"]),
    ("texts-str", dict(json={"texts": "abc"}), 422, "invalid_request", "texts", ["valid list"]),
    ("unknown-field", dict(json={"text": "a", "beam": 4}), 422, "invalid_request", "beam", ["not permitted"]),
    (
        "surrogate",
        dict(content=b'{"text": "\\ud800"}', headers={"content-type": "application/json"}),
        422,
        "invalid_text",
        "text",
        ["text is not valid Unicode: surrogates not allowed at character 0"],
    ),
    ("not-object", dict(json=["a", "b"]), 422, "invalid_request", None, ["JSON object"]),
    (
        "bad-json",
        dict(content=b'{"text": "a",}', headers={"content-type": "application/json"}),
        400,
        "invalid_json",
        None,
        ["not valid JSON", "character"],
    ),
    (
        "empty-body",
        dict(content=b"", headers={"content-type": "application/json"}),
        400,
        "invalid_json",
        None,
        ["empty"],
    ),
    ("not-utf8", dict(content=b'{"text": "\xff"}', headers={"content-type": "application/json"}), 400, None, None, []),
    (
        "text/plain",
        dict(content=b'{"text": "a"}', headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
        None,
        ["application/json", "text/plain"],
    ),
    ("form", dict(data={"text": "a"}), 415, "unsupported_media_type", None, ["application/x-www-form-urlencoded"]),
    ("no-content-type", dict(content=b'{"text": "a"}'), 415, "unsupported_media_type", None, ["none"]),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "field", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input(server, kwargs, status, code, field, words):
    response = post(server, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "field"}
    if code is not None:
        assert error["code"] == code
    assert error["field"] == field
    for word in words:
        assert word in error["message"], error["message"]


def test_too_many_tokens_gives_count_and_limit(server, translator, sentences):
    long = " ".join(sentences(8, 6))
    n = translator.count_tokens(long)
    assert n > 40
    response = post(server, json={"texts": ["A dog.", long]})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "text_too_long",
        "message": f"texts[1] has {n} source tokens, more than the limit of 40",
        "field": "texts[1]",
    }


def test_other_http_errors_have_the_same_shape(server):
    for response, status, code in [
        (httpx.get(f"{server.url}/translate"), 405, "method_not_allowed"),
        (httpx.get(f"{server.url}/nowhere"), 404, "not_found"),
    ]:
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
        assert set(response.json()["error"]) == {"code", "message", "field"}


def test_huge_body_is_refused_before_it_is_read(server):
    """A declared body over the limit gets 413 at once (raw socket: httpx will not send a short body)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /translate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            b"Content-Length: 99999999\r\n\r\n{"
        )
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < int(
            data.lower().partition(b"content-length: ")[2].split(b"\r\n")[0] or 0
        ):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed early after {data!r}"
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    error = json.loads(body)["error"]
    assert error["code"] == "payload_too_large" and "99999999 bytes" in error["message"]


def test_server_survives_bad_input(server, translator):
    """After every bad request above (and here), the server still answers correctly."""
    for payload in [b"\x00" * 1000, b"[" * 10000, b'{"text": ' + b'"a",' * 1000 + b"}"]:
        response = post(server, content=payload, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500
    assert health(server)["status"] == "ok"
    response = post(server, json={"text": "A dog."})
    assert response.status_code == 200
    assert_same(response.json()["translations"][0], translator.translate(["A dog."], DEFAULTS)[0])


# -- batching under concurrency ------------------------------------------------------------------------


def test_100_concurrent_requests_are_batched_and_correct(serve, translator, sentences):
    texts = sentences(100, 8)
    wide = dict(beam_size=2, n_best=2)  # every 4th request asks for other options: its own batches
    payloads = [{"text": t, **(wide if i % 4 == 0 else {})} for i, t in enumerate(texts)]
    expected = [
        translator.translate([t], DEFAULTS.override(**(wide if i % 4 == 0 else {})))[0] for i, t in enumerate(texts)
    ]

    async def one(client: httpx.AsyncClient, payload: dict) -> tuple[httpx.Response, float]:
        start = time.perf_counter()
        response = await client.post("/translate", json=payload)
        return response, time.perf_counter() - start

    async def all_at_once(url: str):
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            start = time.perf_counter()
            answers = await asyncio.gather(*(one(client, p) for p in payloads))
            return answers, time.perf_counter() - start

    with serve(translator, **LIMITS, max_batch_size=32, max_wait_ms=10) as srv:
        answers, wall = asyncio.run(all_at_once(srv.url))
        state = health(srv)
    for i, ((response, _), exp) in enumerate(zip(answers, expected)):
        assert response.status_code == 200, response.text
        assert_same(response.json()["translations"][0], exp, n_best=2 if i % 4 == 0 else 1)
    latencies = sorted(seconds for _, seconds in answers)
    print(
        f"\n100 concurrent requests: {wall:.2f} s wall, {100 / wall:.1f} req/s, latency p50 "
        f"{statistics.median(latencies) * 1000:.0f} ms, p95 {latencies[94] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms; {state['batches']} batches, largest {state['largest_batch']}"
    )
    assert state["texts_translated"] == 100 and state["requests"] == 100
    assert state["batches"] < 100 and state["largest_batch"] > 1  # requests were decoded together
    assert state["batches"] >= 2  # at least one batch per set of options


# -- overload: queue full (503), timeout (504), model failure (500) -------------------------------------


class GatedTranslator:
    """Decodes only once ``gate`` is set; records every batch it was given."""

    def __init__(self, inner) -> None:
        self.inner, self.gate, self.batches = inner, threading.Event(), []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def translate(self, texts, options=None):
        self.batches.append(list(texts))
        assert self.gate.wait(timeout=20), "the test never opened the gate"
        return self.inner.translate(texts, options)


class SleepyTranslator(GatedTranslator):
    """Sleeps ``delay`` seconds on batches with a text containing "slow"; raises on "boom"."""

    def __init__(self, inner, delay: float) -> None:
        super().__init__(inner)
        self.gate.set()
        self.delay = delay

    def translate(self, texts, options=None):
        if any("boom" in t for t in texts):
            raise RuntimeError("boom: the model broke")
        if any("slow" in t for t in texts):
            time.sleep(self.delay)
        return super().translate(texts, options)


def test_full_queue_gives_503_with_retry_after(serve, translator, sentences):
    gated = GatedTranslator(translator)
    texts = sentences(4, 9)

    async def scenario(url: str):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = asyncio.create_task(client.post("/translate", json={"text": texts[0]}))
            await asyncio.to_thread(wait_for, srv, lambda s: s["in_flight"] == 1)  # decoding, blocked on the gate
            queued = []
            for depth, text in enumerate(texts[1:3], start=1):  # one at a time, so their order is known
                queued.append(asyncio.create_task(client.post("/translate", json={"text": text})))
                await asyncio.to_thread(wait_for, srv, lambda s, depth=depth: s["queue_depth"] == depth)
            # The queue is full now.
            refused = await client.post("/translate", json={"text": texts[3]})
            refused_many = await client.post("/translate", json={"texts": texts[:2]})
            gated.gate.set()
            return refused, refused_many, await asyncio.gather(first, *queued)

    with serve(gated, **{**LIMITS, "max_texts": 2}, max_batch_size=1, max_queue=2) as srv:
        refused, refused_many, served = asyncio.run(scenario(srv.url))
        state = health(srv)
    for response in (refused, refused_many):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        error = response.json()["error"]
        assert error["code"] == "queue_full" and "limit of 2" in error["message"] and error["field"] is None
    assert "2 texts are waiting" in refused.json()["error"]["message"]
    for response, text in zip(served, texts):
        assert response.status_code == 200
        assert_same(response.json()["translations"][0], translator.translate([text], DEFAULTS)[0])
    assert state["rejected"] == 2 and state["texts_translated"] == 3
    assert gated.batches == [[t] for t in texts[:3]]


def test_timeout_gives_504_and_the_server_recovers(serve, translator):
    sleepy = SleepyTranslator(translator, delay=2.5)
    with serve(sleepy, **LIMITS, timeout_s=0.5, max_wait_ms=0) as srv:

        async def slow_then_queued(url: str):
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                slow = asyncio.create_task(client.post("/translate", json={"text": "A slow dog."}))
                await asyncio.to_thread(wait_for, srv, lambda s: s["in_flight"] == 1)
                start = time.perf_counter()
                queued = await client.post("/translate", json={"text": "A queued cat."})
                return await slow, queued, time.perf_counter() - start

        slow, queued, waited = asyncio.run(slow_then_queued(srv.url))
        for response in (slow, queued):
            assert response.status_code == 504
            assert response.json()["error"] == {
                "code": "timeout",
                "message": "the translation did not finish within 0.5 s; the server is busy",
                "field": None,
            }
        assert waited < 2.0  # answered at its own deadline (0.5 s), not after the slow batch (2.5 s)
        wait_for(srv, lambda s: s["in_flight"] == 0)
        ok = post(srv, json={"text": "A dog."})
        assert ok.status_code == 200
        assert_same(ok.json()["translations"][0], translator.translate(["A dog."], DEFAULTS)[0])
        state = health(srv)
    assert state["timeouts"] == 2
    # The queued text gave up before its turn, so it was never decoded.
    assert sleepy.batches == [["A slow dog."], ["A dog."]]


def test_model_failure_gives_500_and_the_server_recovers(serve, translator):
    with serve(SleepyTranslator(translator, delay=0), **LIMITS) as srv:
        failed = post(srv, json={"text": "A boom."})
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "translation_failed"
        assert "boom: the model broke" in failed.json()["error"]["message"]
        assert post(srv, json={"text": "A dog."}).status_code == 200


def test_without_a_running_worker_health_and_translate_say_503(translator):
    """The app without its lifespan (so no batcher task), driven in-process through ASGI."""
    app = create_app(translator, ServeConfig(**LIMITS))

    async def calls():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/health"), await client.post("/translate", json={"text": "A dog."})

    state, refused = asyncio.run(calls())
    assert state.status_code == 503 and state.json()["status"] == "unavailable"
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"] == {
        "code": "unavailable",
        "message": "the translation worker is not running",
        "field": None,
    }
