"""The HTTP translation service: a FastAPI app over a ``Translator`` and a ``Batcher``.

Endpoints: ``POST /translate``, ``GET /health``, and the OpenAPI docs at ``/docs`` and ``/openapi.json``.
Every error has one JSON shape (see ``serve.errors``)::

    {"error": {"code": "text_too_long", "message": "texts[2] has 300 source tokens, ...", "field": "texts[2]"}}

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time, and
the request model is a local of ``create_app``.)
"""

import asyncio
import contextlib
import logging
import math
import re
from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Response
from pydantic import BaseModel

from ..decoding import DecodeOptionError, DecodeOptions
from .batcher import Batcher, QueueFull, ShuttingDown
from .errors import ErrorResponse, ServiceError, install_error_handling
from .schemas import HealthResponse, Hypothesis, ServeConfig, TranslateResponse, TranslationResult, request_model

log = logging.getLogger(__name__)


class TranslatorLike(Protocol):
    """What the service needs of ``transformer.translator.Translator``."""

    def translate(self, texts: Sequence[str], options: DecodeOptions | None = None) -> list[list[Any]]: ...
    # Translation has .text, .tokens, .score

    def count_tokens(self, text: str) -> int: ...


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _checked_texts(body: BaseModel, translator: TranslatorLike, cfg: ServeConfig) -> list[str]:
    """The texts of a request, or a ServiceError saying what is wrong with them (naming the field)."""
    if (body.text is None) == (body.texts is None):
        which = "both" if body.text is not None else "neither"
        raise ServiceError(422, "invalid_request", f"give exactly one of `text` or `texts`, got {which}", "text")
    texts = [body.text] if body.text is not None else list(body.texts)
    names = ["text"] if body.text is not None else [f"texts[{i}]" for i in range(len(texts))]
    for text, name in zip(texts, names):
        if not text.strip():
            raise ServiceError(422, "empty_text", f"{name} is empty; there is nothing to translate", name)
        if len(text) > cfg.max_text_chars:
            raise ServiceError(
                422,
                "text_too_long",
                f"{name} has {len(text)} characters, more than the limit of {cfg.max_text_chars} "
                f"({cfg.max_text_tokens} source tokens)",
                name,
            )
        try:
            text.encode("utf-8")  # JSON may carry lone surrogates ("\ud800"), which are no text
        except UnicodeEncodeError as exc:
            message = f"{name} is not valid Unicode: {exc.reason} at character {exc.start}"
            raise ServiceError(422, "invalid_text", message, name) from exc
        try:
            n = translator.count_tokens(text)
        except Exception as exc:
            log.exception("count_tokens failed on %s", name)
            raise ServiceError(422, "invalid_text", f"{name} cannot be tokenized: {type(exc).__name__}", name) from exc
        if n == 0:
            raise ServiceError(422, "empty_text", f"{name} has no source tokens; there is nothing to translate", name)
        if n > cfg.max_text_tokens:
            raise ServiceError(
                422,
                "text_too_long",
                f"{name} has {n} source tokens, more than the limit of {cfg.max_text_tokens}",
                name,
            )
    return texts


def _options(body: BaseModel, cfg: ServeConfig) -> DecodeOptions:
    """The server's decoding defaults with the request's options; a ServiceError naming a bad combination."""
    try:
        return cfg.decode.override(beam_size=body.beam_size, n_best=body.n_best, length_penalty=body.length_penalty,
                                   length_normalization=body.length_normalization)
    except DecodeOptionError as exc:
        must = re.sub(r"beam_size \((\d+)\)", r"beam_size=\1", exc.must)  # the request's words: beam_size=2
        raise ServiceError(422, "invalid_request", f"{exc.field}={exc.value} must be {must}", exc.field) from exc


def _result(nbest: Sequence[Any], n_best: int) -> TranslationResult:
    best = TranslationResult(text=nbest[0].text, score=_finite(nbest[0].score))
    if n_best > 1:  # set only then: the response leaves unset fields out
        best.n_best = [Hypothesis(text=t.text, score=_finite(t.score)) for t in nbest]
    return best


def create_app(translator: TranslatorLike, cfg: ServeConfig | None = None) -> FastAPI:
    """The service for ``translator``; start it with uvicorn (``transformer serve`` does)."""
    cfg = cfg or ServeConfig()
    batcher = Batcher(translator.translate, cfg.max_batch_size, cfg.max_wait_ms / 1000, cfg.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="Transformer translation service",
        description="Translate text with an encoder-decoder Transformer (Attention Is All You Need). "
        "Requests that arrive together are decoded in one batch.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.config, app.state.translator = batcher, cfg, translator
    app.state.timeouts = 0
    install_error_handling(app, max_body_bytes=max(1 << 20, 2 * cfg.max_texts * cfg.max_text_chars))
    _add_translate(app, translator, batcher, cfg)
    _add_health(app, translator, batcher, cfg)
    return app


def _add_translate(app: FastAPI, translator: TranslatorLike, batcher: Batcher, cfg: ServeConfig) -> None:
    TranslateRequest = request_model(cfg)
    errors = {s: {"model": ErrorResponse} for s in (400, 413, 415, 422, 500, 503, 504)}

    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_unset=True, responses=errors)
    async def translate(body: TranslateRequest) -> TranslateResponse:  # type: ignore[valid-type]
        """Translate `text` or `texts`. Texts of concurrent requests with equal options share a batch."""
        texts = _checked_texts(body, translator, cfg)
        options = _options(body, cfg)
        try:
            nbests = await asyncio.wait_for(batcher.submit(texts, options), cfg.timeout_s)
        except QueueFull as exc:
            raise ServiceError(503, "queue_full", f"{exc}; retry later", headers={"Retry-After": "1"}) from exc
        except ShuttingDown as exc:
            raise ServiceError(503, "unavailable", str(exc), headers={"Retry-After": "5"}) from exc
        except asyncio.TimeoutError as exc:
            app.state.timeouts += 1
            raise ServiceError(
                504, "timeout", f"the translation did not finish within {cfg.timeout_s:g} s; the server is busy"
            ) from exc
        except Exception as exc:
            raise ServiceError(500, "translation_failed", f"the model failed on this request: {exc}") from exc
        return TranslateResponse(translations=[_result(nb, options.n_best) for nb in nbests])


def _add_health(app: FastAPI, translator: TranslatorLike, batcher: Batcher, cfg: ServeConfig) -> None:
    @app.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
    async def health(response: Response) -> HealthResponse:
        """Whether the model is loaded, how many texts wait, and batching counters (503 while not serving)."""
        if not batcher.running:
            response.status_code = 503
        stats = batcher.stats
        return HealthResponse(
            status="ok" if batcher.running else "unavailable",
            model_loaded=translator is not None,
            device=str(getattr(translator, "device", "cpu")),
            queue_depth=batcher.queue_depth,
            in_flight=batcher.in_flight,
            requests=stats.requests,
            texts_translated=stats.texts,
            batches=stats.batches,
            largest_batch=stats.largest_batch,
            rejected=stats.rejected,
            timeouts=app.state.timeouts,
            limits=cfg.limits(),
        )
