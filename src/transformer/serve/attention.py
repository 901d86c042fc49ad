"""``POST /attention``: a text's translation and every attention weight of the model while writing it.

The answer is ``Translator.attention``'s (the numbers ``transformer attention`` draws) as JSON: the source,
decoder-input and output tokens, and per kind (encoder, decoder, cross) the weights ``[layer][head][query][key]``.
The text and the options are checked as ``/translate`` checks them (``serve.validation``); then the size of the
answer: weights grow with the square of the length, so a text whose weights would exceed
``ServeConfig.max_attention_weights`` is refused, before decoding when its source length alone is too long.

The model runs in a thread of its own, one text at a time, within the request timeout; a request that times out
before its turn never runs.

(No ``from __future__ import annotations``: FastAPI reads the endpoint's annotations at run time.)
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Response

from ..decoding import DecodeOptions
from .batcher import ShuttingDown
from .errors import ErrorResponse, ServiceError, within_timeout
from .schemas import AttentionResponse, AttentionWeights, ServeConfig, attention_request_model
from .validation import checked_text, decode_options

if TYPE_CHECKING:
    from ..translator import AttentionResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttentionShape:
    """Layers and heads of a model: what the number of its attention weights depends on besides lengths."""

    encoder_layers: int
    decoder_layers: int
    heads: int

    @classmethod
    def of(cls, translator: Any) -> "AttentionShape":
        """A ``Translator``'s, from its model's config."""
        cfg = translator.model.cfg
        return cls(cfg.n_encoder_layers, cfg.n_decoder_layers, cfg.n_heads)

    def weight_count(self, source_len: int, target_len: int) -> int:
        """Weights of S source and T decoder positions: H (L_enc S^2 + L_dec (T^2 + T S))."""
        s, t = source_len, target_len
        return self.heads * (self.encoder_layers * s * s + self.decoder_layers * (t * t + t * s))


def check_source_size(shape: AttentionShape, n_tokens: int, options: DecodeOptions, cfg: ServeConfig) -> None:
    """Refuse, before decoding, a text whose weights exceed the limit even with the shortest translation allowed.

    ``n_tokens`` source subwords are S = n_tokens + 1 positions (the EOS); the decoder has at least
    T = 1 + min_len positions ("<s>" and the output).
    """
    fewest = shape.weight_count(n_tokens + 1, 1 + options.min_len)
    if fewest > cfg.max_attention_weights:
        raise ServiceError(
            422,
            "attention_too_large",
            f"text has {n_tokens} source tokens: its attention weights would be at least {fewest} numbers, more "
            f"than the limit of {cfg.max_attention_weights} (max_attention_weights); send a shorter text",
            "text",
        )


def _weights(maps: list) -> list:
    """Per-layer (1, H, Tq, Tk) tensors -> [layer][head][query][key] floats (float32 values, exactly)."""
    return [layer[0].float().cpu().tolist() for layer in maps]


def attention_json(result: "AttentionResult", cfg: ServeConfig) -> bytes:
    """The response body for ``result``, or a ServiceError if its weights exceed the limit."""
    maps = result.maps
    shape = AttentionShape(len(maps.encoder), len(maps.decoder_self), maps.encoder[0].size(1))
    s, t = len(result.src_pieces), len(result.tgt_pieces)
    count = shape.weight_count(s, t)
    if count > cfg.max_attention_weights:
        raise ServiceError(
            422,
            "attention_too_large",
            f"the translation has {t - 1} tokens: its attention weights are {count} numbers, more than the limit "
            f"of {cfg.max_attention_weights} (max_attention_weights); send a shorter text",
            "text",
        )
    body = AttentionResponse(
        translation=result.translation,
        source_tokens=result.src_pieces,
        target_tokens=result.tgt_pieces,
        output_tokens=result.output_pieces,
        encoder_layers=shape.encoder_layers,
        decoder_layers=shape.decoder_layers,
        heads=shape.heads,
        weight_count=count,
        weights=AttentionWeights(
            encoder=_weights(maps.encoder), decoder=_weights(maps.decoder_self), cross=_weights(maps.cross)
        ),
    )
    return body.model_dump_json().encode("utf-8")


class AttentionWorker:
    """Runs ``translator.attention`` and builds the JSON answer in one thread, one request at a time (a second
    thread beside the batcher's, so a long attention pass never holds up translations)."""

    def __init__(self, translator: Any, cfg: ServeConfig) -> None:
        self.translator, self.cfg = translator, cfg
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attention")
        self.closed = False

    def _answer(self, text: str, options: DecodeOptions) -> bytes:
        return attention_json(self.translator.attention(text, options), self.cfg)

    async def answer(self, text: str, options: DecodeOptions) -> bytes:
        """The JSON body for ``text``. Cancelling the await before the thread took the job up drops it.

        Raises:
            ShuttingDown: the worker was closed before the job ran.
        """
        if self.closed:
            raise ShuttingDown("the attention worker is not running")
        job = self._executor.submit(self._answer, text, options)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            if self.closed and job.cancelled():  # dropped by close(), not by the caller
                raise ShuttingDown("the server stopped before this text's turn") from None
            raise

    def close(self) -> None:
        """Drop the waiting jobs; one that runs finishes in the background."""
        self.closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)


def add_attention(app: FastAPI, translator: Any, cfg: ServeConfig) -> AttentionWorker:
    """Add ``POST /attention`` to ``app``; the caller closes the returned worker when the app stops."""
    AttentionRequest = attention_request_model(cfg)
    errors = {s: {"model": ErrorResponse} for s in (400, 413, 415, 422, 500, 503, 504)}
    worker = AttentionWorker(translator, cfg)

    @app.post("/attention", response_model=AttentionResponse, responses=errors)
    async def attention(body: AttentionRequest) -> Response:  # type: ignore[valid-type]
        """Translate `text` and answer every attention weight of the model while writing that translation: per
        kind (encoder, decoder, cross), layer and head, one row per query token and one column per key token."""
        n_tokens = checked_text(body.text, "text", translator, cfg)
        options = decode_options(cfg, beam_size=body.beam_size, n_best=1, length_penalty=body.length_penalty,
                                 length_normalization=body.length_normalization)
        check_source_size(AttentionShape.of(translator), n_tokens, options, cfg)
        content = await within_timeout(app, worker.answer(body.text, options), cfg.timeout_s, "attention",
                                       "attention_failed")
        return Response(content, media_type="application/json")

    return worker
