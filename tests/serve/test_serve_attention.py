"""POST /attention over real HTTP: the weights are Translator.attention's, exactly; the same checks and JSON errors
as /translate; the size limit; the timeout; the schema in /docs. Also the web page's files (GET /, /static/).

The translator is the real one of ``conftest.py`` (SentencePiece vocab + random tiny model, 2 layers, 2 heads).
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import torch

from transformer import DecodeOptions
from transformer.serve import ServeConfig
from transformer.serve.attention import AttentionShape, AttentionWorker
from transformer.serve.batcher import ShuttingDown

DEFAULTS = DecodeOptions(max_len=10)
LIMITS = dict(max_text_tokens=40, max_texts=8, max_beam_size=8, decode=DEFAULTS)
KINDS = {"encoder": "encoder", "decoder": "decoder_self", "cross": "cross"}  # the API's name -> AttentionMaps'


@pytest.fixture(scope="module")
def server(serve, translator):
    with serve(translator, **LIMITS) as srv:
        yield srv


def attention(srv, timeout: float = 30, **kwargs) -> httpx.Response:
    return httpx.post(f"{srv.url}/attention", timeout=timeout, **kwargs)


def assert_equals_translator(answer: dict, expected) -> None:
    """One /attention answer against ``Translator.attention``'s result for the same text and options."""
    maps = expected.maps
    assert answer["translation"] == expected.translation
    assert answer["source_tokens"] == expected.src_pieces
    assert answer["target_tokens"] == expected.tgt_pieces
    assert answer["output_tokens"] == expected.output_pieces
    assert answer["encoder_layers"] == len(maps.encoder) and answer["decoder_layers"] == len(maps.decoder_self)
    assert answer["heads"] == maps.encoder[0].size(1)
    count = 0
    for kind, field in KINDS.items():
        got = answer["weights"][kind]
        want = getattr(maps, field)
        assert len(got) == len(want)
        for layer, tensor in zip(got, want):
            served = torch.tensor(layer, dtype=torch.float64)  # (H, Tq, Tk)
            assert served.shape == tensor[0].shape
            assert torch.equal(served, tensor[0].double()), f"{kind}: the served weights differ"
            count += served.numel()
    assert answer["weight_count"] == count


# -- the weights ---------------------------------------------------------------------------------------


def test_weights_equal_translator_attention_exactly(server, translator, sentences):
    text = sentences(1, 21)[0]
    response = attention(server, json={"text": text})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert_equals_translator(response.json(), translator.attention(text, DEFAULTS))


@pytest.mark.parametrize(
    "options",
    [dict(beam_size=1), dict(beam_size=3, length_penalty=1.0, length_normalization="power")],
    ids=["greedy", "beam3-power"],
)
def test_options_are_the_translate_options(server, translator, sentences, options):
    """The request's options decode as /translate's do, and the translation is /translate's best."""
    text = sentences(1, 22)[0]
    response = attention(server, json={"text": text, **options})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert_equals_translator(answer, translator.attention(text, DEFAULTS.override(**options)))
    translated = httpx.post(f"{server.url}/translate", json={"text": text, **options}, timeout=30)
    assert answer["translation"] == translated.json()["translations"][0]["text"]


def test_rows_sum_to_one_and_the_causal_triangle_is_zero(server, sentences):
    answer = attention(server, json={"text": sentences(1, 23)[0]}).json()
    t, s = len(answer["target_tokens"]), len(answer["source_tokens"])
    assert len(answer["output_tokens"]) == t
    for kind, (rows, cols) in {"encoder": (s, s), "decoder": (t, t), "cross": (t, s)}.items():
        weights = torch.tensor(answer["weights"][kind], dtype=torch.float64)  # (L, H, rows, cols)
        assert weights.shape[1:] == (answer["heads"], rows, cols)
        assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=torch.float64), atol=1e-5)
        assert (weights >= 0).all()
    decoder = torch.tensor(answer["weights"]["decoder"], dtype=torch.float64)
    future = torch.ones(t, t, dtype=torch.bool).triu(diagonal=1)
    assert (decoder[..., future] == 0).all()  # exactly 0, not merely small
    assert (decoder[..., ~future] > 0).all()  # the past and the present are all attended to a little


# -- the same checks and errors as /translate ---------------------------------------------------------------

SAME_AS_TRANSLATE = [
    ("empty", dict(json={"text": ""})),
    ("blank", dict(json={"text": "  \t "})),
    ("too-long-chars", dict(json={"text": "a" * 2561})),
    ("beam-0", dict(json={"text": "a", "beam_size": 0})),
    ("beam-big", dict(json={"text": "a", "beam_size": 9})),
    ("beam-str", dict(json={"text": "a", "beam_size": "4"})),
    ("beam-float", dict(json={"text": "a", "beam_size": 2.5})),
    ("alpha<0", dict(json={"text": "a", "length_penalty": -1})),
    ("alpha-nan", dict(content=b'{"text": "a", "length_penalty": NaN}', headers={"content-type": "application/json"})),
    ("normalization", dict(json={"text": "a", "length_normalization": "linear"})),
    ("text-number", dict(json={"text": 5})),
    ("unknown-field", dict(json={"text": "a", "beam": 4})),
    ("surrogate", dict(content=b'{"text": "\\ud800"}', headers={"content-type": "application/json"})),
    ("not-object", dict(json=["a", "b"])),
    ("bad-json", dict(content=b'{"text": "a",}', headers={"content-type": "application/json"})),
    ("empty-body", dict(content=b"", headers={"content-type": "application/json"})),
    ("not-utf8", dict(content=b'{"text": "\xff"}', headers={"content-type": "application/json"})),
    ("text/plain", dict(content=b'{"text": "a"}', headers={"content-type": "text/plain"})),
    ("form", dict(data={"text": "a"})),
]


@pytest.mark.parametrize("kwargs", [case[1] for case in SAME_AS_TRANSLATE], ids=[case[0] for case in SAME_AS_TRANSLATE])
def test_bad_input_gets_the_error_of_translate(server, kwargs):
    """Status, code, field and message: the very answer /translate gives to the same body."""
    served = attention(server, **kwargs)
    translated = httpx.post(f"{server.url}/translate", timeout=30, **kwargs)
    assert 400 <= served.status_code < 500
    assert served.headers["content-type"] == "application/json"
    assert (served.status_code, served.json()) == (translated.status_code, translated.json())
    assert set(served.json()["error"]) == {"code", "message", "field"}


def test_too_many_tokens_and_missing_text(server, translator, sentences):
    long = " ".join(sentences(8, 6))
    n = translator.count_tokens(long)
    response = attention(server, json={"text": long})
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "text_too_long",
        "message": f"text has {n} source tokens, more than the limit of 40",
        "field": "text",
    }
    for body in ({}, {"texts": ["a"]}):  # /attention takes one text, named `text`
        error = attention(server, json=body).json()["error"]
        assert error["code"] == "invalid_request" and error["field"] in ("text", "texts")


# -- the size limit ------------------------------------------------------------------------------------


class CountingTranslator:
    """``inner``, counting the texts given to ``attention``."""

    def __init__(self, inner) -> None:
        self.inner, self.model, self.calls = inner, inner.model, []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def translate(self, texts, options=None):
        return self.inner.translate(texts, options)

    def attention(self, text, options=None):
        self.calls.append(text)
        return self.inner.attention(text, options)


def test_a_text_too_long_for_the_limit_is_refused_before_decoding(serve, translator, sentences):
    text = sentences(1, 24)[0]
    n = translator.count_tokens(text)
    shape = AttentionShape.of(translator)
    fewest = shape.weight_count(n + 1, 1)  # S = n + EOS, T = "<s>" alone
    counting = CountingTranslator(translator)
    with serve(counting, **LIMITS, max_attention_weights=fewest - 1) as srv:
        response = attention(srv, json={"text": text})
        health = httpx.get(f"{srv.url}/health").json()
    assert response.status_code == 422
    assert response.json()["error"] == {
        "code": "attention_too_large",
        "message": f"text has {n} source tokens: its attention weights would be at least {fewest} numbers, more "
        f"than the limit of {fewest - 1} (max_attention_weights); send a shorter text",
        "field": "text",
    }
    assert counting.calls == []  # refused before the model ran
    assert health["limits"]["max_attention_weights"] == fewest - 1


def test_a_translation_too_long_for_the_limit_is_refused_after_decoding(serve, translator, sentences):
    text = sentences(1, 25)[0]
    result = translator.attention(text, DEFAULTS)
    s, t = len(result.src_pieces), len(result.tgt_pieces)
    assert t > 1, "the test needs a translation of at least one token"
    count = AttentionShape.of(translator).weight_count(s, t)
    with serve(translator, **LIMITS, max_attention_weights=count - 1) as srv:
        refused = attention(srv, json={"text": text})
    with serve(translator, **LIMITS, max_attention_weights=count) as srv:
        served = attention(srv, json={"text": text})  # exactly at the limit: answered
    assert refused.status_code == 422
    assert refused.json()["error"] == {
        "code": "attention_too_large",
        "message": f"the translation has {t - 1} tokens: its attention weights are {count} numbers, more than the "
        f"limit of {count - 1} (max_attention_weights); send a shorter text",
        "field": "text",
    }
    assert served.status_code == 200 and served.json()["weight_count"] == count


def test_the_limit_must_be_positive():
    with pytest.raises(ValueError, match="max_attention_weights=0 must be >= 1"):
        ServeConfig(max_attention_weights=0)


# -- timeouts, failures, shutdown ----------------------------------------------------------------------


class SlowTranslator(CountingTranslator):
    """Sleeps ``delay`` seconds in ``attention`` on texts containing "slow"; raises on "boom"."""

    def __init__(self, inner, delay: float) -> None:
        super().__init__(inner)
        self.delay, self.slow_done = delay, threading.Event()

    def attention(self, text, options=None):
        if "boom" in text:
            raise RuntimeError("boom: the model broke")
        if "slow" not in text:
            return super().attention(text, options)
        time.sleep(self.delay)
        result = super().attention(text, options)
        self.slow_done.set()
        return result


def test_timeout_gives_504_and_a_waiting_request_never_runs(serve, translator):
    slow = SlowTranslator(translator, delay=2.0)
    with serve(slow, **LIMITS, timeout_s=0.5) as srv:

        async def both(url: str):
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                first = asyncio.create_task(client.post("/attention", json={"text": "A slow dog."}))
                await asyncio.sleep(0.2)  # the slow one holds the attention thread
                second = await client.post("/attention", json={"text": "A waiting cat."})
                return await first, second

        first, second = asyncio.run(both(srv.url))
        for response in (first, second):
            assert response.status_code == 504
            assert response.json()["error"] == {
                "code": "timeout",
                "message": "the attention did not finish within 0.5 s; the server is busy",
                "field": None,
            }
        assert slow.slow_done.wait(timeout=10)
        time.sleep(0.1)  # its answer is built and dropped
        ok = attention(srv, json={"text": "A dog."})
        assert ok.status_code == 200
        assert httpx.get(f"{srv.url}/health").json()["timeouts"] == 2
    assert slow.calls == ["A slow dog.", "A dog."]  # the waiting cat gave up before its turn


def test_model_failure_gives_500_and_the_server_recovers(serve, translator):
    with serve(SlowTranslator(translator, delay=0), **LIMITS) as srv:
        failed = attention(srv, json={"text": "A boom."})
        assert failed.status_code == 500
        assert failed.json()["error"]["code"] == "attention_failed"
        assert "boom: the model broke" in failed.json()["error"]["message"]
        assert attention(srv, json={"text": "A dog."}).status_code == 200


def test_a_closed_worker_refuses_and_drops_waiting_jobs(translator):
    gate = threading.Event()

    class Gated(CountingTranslator):
        def attention(self, text, options=None):
            gate.wait(timeout=20)
            return super().attention(text, options)

    worker = AttentionWorker(Gated(translator), ServeConfig(**LIMITS))

    async def scenario():
        running = asyncio.ensure_future(worker.answer("A dog.", DEFAULTS))
        await asyncio.sleep(0.2)
        waiting = asyncio.ensure_future(worker.answer("A cat.", DEFAULTS))
        await asyncio.sleep(0.05)
        worker.close()
        gate.set()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    running, waiting = asyncio.run(scenario())
    assert isinstance(running, bytes)  # the running pass finished
    assert isinstance(waiting, ShuttingDown)
    with pytest.raises(ShuttingDown, match="not running"):
        asyncio.run(worker.answer("A bird.", DEFAULTS))


# -- the schema in /docs -------------------------------------------------------------------------------


def test_docs_describe_the_attention_endpoint(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    post = spec["paths"]["/attention"]["post"]
    assert {"200", "422", "504"} <= set(post["responses"])
    schemas = spec["components"]["schemas"]
    request = schemas["AttentionRequest"]
    assert request["required"] == ["text"]
    assert set(request["properties"]) == {"text", "beam_size", "length_penalty", "length_normalization"}
    beam = next(s for s in request["properties"]["beam_size"]["anyOf"] if s.get("type") == "integer")
    assert (beam["minimum"], beam["maximum"]) == (1, 8)
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    properties = schemas[answer]["properties"]
    assert {"translation", "source_tokens", "target_tokens", "output_tokens", "encoder_layers", "decoder_layers",
            "heads", "weight_count", "weights"} <= set(properties)
    weights = schemas["AttentionWeights"]["properties"]
    assert set(weights) == {"encoder", "decoder", "cross"}
    assert all(weights[k]["description"] for k in weights)
    assert "exactly 0" in weights["decoder"]["description"]
    assert all(properties[k].get("description") for k in properties if k != "weights")
    assert "/" not in spec["paths"]  # the page is not part of the API


# -- the web page's files ------------------------------------------------------------------------------


def test_the_page_and_its_files_are_served_with_their_types(server):
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script src="static/app.js"' in page.text and 'href="static/style.css"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for name, media_type, words in [("app.js", "text/javascript", "fetch("), ("style.css", "text/css", ":root")]:
        response = httpx.get(f"{server.url}/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
        assert words in response.text
        code = response.text.replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace, not an address
        assert "https://" not in code and "http://" not in code
    assert httpx.head(f"{server.url}/").status_code == 200
    for missing in ("/static/index.html", "/static/nothing.js", "/static/../app.py"):
        response = httpx.get(f"{server.url}{missing}")
        assert response.status_code == 404
        assert set(response.json()["error"]) == {"code", "message", "field"}


# -- the command line ----------------------------------------------------------------------------------


def test_serve_takes_the_limit_from_the_command_line(monkeypatch, capsys, run_dir):
    """--max-attention-weights reaches the app's config (uvicorn.run replaced); 0 is refused, naming the field."""
    import uvicorn

    from transformer.cli import main

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app, **kwargs))
    argv = ["serve", "--checkpoint", str(run_dir), "--device", "cpu", "--port", "0"]
    assert main([*argv, "--max-attention-weights", "1234"]) == 0
    assert served["app"].state.config.max_attention_weights == 1234
    assert main([*argv, "--max-attention-weights", "0"]) == 2
    assert "max_attention_weights=0 must be >= 1" in capsys.readouterr().err
    from transformer.cli.serve import _LIMITS

    defaults = ServeConfig()
    for flag, field, _, default, *_ in _LIMITS:  # every option's default is the config's
        assert default == getattr(defaults, field), flag
