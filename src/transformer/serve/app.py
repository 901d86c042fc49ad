"""The HTTP translation service: a FastAPI app over a ``Translator`` and a ``Batcher``.

Endpoints: ``POST /translate``, ``POST /attention`` (``serve.attention``), ``GET /health``, the web page at
``GET /`` (``serve.page``), and the OpenAPI docs at ``/docs`` and ``/openapi.json``. Every error has one JSON
shape (see ``serve.errors``)::

    {"error": {"code": "text_too_long", "message": "texts[2] has 300 source tokens, ...", "field": "texts[2]"}}

(No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time, and
the request model is a local of ``create_app``.)
"""

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI, Response

from ..decoding import DecodeOptions
from .attention import add_attention
from .batcher import Batcher
from .errors import ErrorResponse, install_error_handling, within_timeout
from .page import add_page
from .schemas import HealthResponse, Hypothesis, ServeConfig, TranslateResponse, TranslationResult, request_model
from .validation import checked_texts, decode_options

if TYPE_CHECKING:
    from ..translator import AttentionResult


class TranslatorLike(Protocol):
    """What the service needs of ``transformer.translator.Translator``."""

    def translate(self, texts: Sequence[str], options: DecodeOptions | None = None) -> list[list[Any]]: ...
    # Translation has .text, .tokens, .score

    def count_tokens(self, text: str) -> int: ...

    def attention(self, text: str, options: DecodeOptions | None = None) -> "AttentionResult": ...
    # for POST /attention, with ``model.cfg`` (its layers and heads: the size check before decoding)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


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
            attention_worker.close()
            await batcher.stop()

    app = FastAPI(
        title="Transformer translation service",
        description="Translate text with an encoder-decoder Transformer (Attention Is All You Need). "
        "Requests that arrive together are decoded in one batch. `POST /attention` answers every attention "
        "weight of a translation; the web page at `/` draws them.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.config, app.state.translator = batcher, cfg, translator
    app.state.timeouts = 0
    install_error_handling(app, max_body_bytes=max(1 << 20, 2 * cfg.max_texts * cfg.max_text_chars))
    _add_translate(app, translator, batcher, cfg)
    attention_worker = add_attention(app, translator, cfg)
    _add_health(app, translator, batcher, cfg)
    add_page(app)
    return app


def _add_translate(app: FastAPI, translator: TranslatorLike, batcher: Batcher, cfg: ServeConfig) -> None:
    TranslateRequest = request_model(cfg)
    errors = {s: {"model": ErrorResponse} for s in (400, 413, 415, 422, 500, 503, 504)}

    @app.post("/translate", response_model=TranslateResponse, response_model_exclude_unset=True, responses=errors)
    async def translate(body: TranslateRequest) -> TranslateResponse:  # type: ignore[valid-type]
        """Translate `text` or `texts`. Texts of concurrent requests with equal options share a batch."""
        texts = checked_texts(body, translator, cfg)
        options = decode_options(cfg, beam_size=body.beam_size, n_best=body.n_best, length_penalty=body.length_penalty,
                                 length_normalization=body.length_normalization)
        nbests = await within_timeout(app, batcher.submit(texts, options), cfg.timeout_s, "translation",
                                      "translation_failed")
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
            precision=getattr(getattr(translator, "model", None), "inference_precision", "float32"),
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
