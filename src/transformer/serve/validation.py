"""What every endpoint checks of a request before the model sees it: the texts and the decoding options.

``POST /translate`` and ``POST /attention`` share these checks, so the same bad input gets the same JSON
error (the same status, code, field and message) from both.
"""

import logging
import re
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel

from ..decoding import DecodeOptionError, DecodeOptions
from .errors import ServiceError
from .schemas import ServeConfig

log = logging.getLogger(__name__)


class TokenCounter(Protocol):
    def count_tokens(self, text: str) -> int: ...


def checked_text(text: str, name: str, translator: TokenCounter, cfg: ServeConfig) -> int:
    """The number of source tokens of ``text``, or a ServiceError naming ``name`` if it cannot be translated
    (empty, too long, not Unicode, not tokenizable)."""
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
            422, "text_too_long", f"{name} has {n} source tokens, more than the limit of {cfg.max_text_tokens}", name
        )
    return n


def checked_texts(body: BaseModel, translator: TokenCounter, cfg: ServeConfig) -> list[str]:
    """The texts of a ``text``-or-``texts`` request, each checked by ``checked_text`` (named ``text`` or
    ``texts[i]``)."""
    if (body.text is None) == (body.texts is None):
        which = "both" if body.text is not None else "neither"
        raise ServiceError(422, "invalid_request", f"give exactly one of `text` or `texts`, got {which}", "text")
    texts: Sequence[str] = [body.text] if body.text is not None else list(body.texts)
    names = ["text"] if body.text is not None else [f"texts[{i}]" for i in range(len(texts))]
    for text, name in zip(texts, names):
        checked_text(text, name, translator, cfg)
    return list(texts)


def decode_options(
    cfg: ServeConfig,
    *,
    beam_size: int | None,
    n_best: int | None,
    length_penalty: float | None,
    length_normalization: str | None,
) -> DecodeOptions:
    """The server's decoding defaults with a request's options (None: the default); a ServiceError naming a
    bad combination in the request's words (``n_best=3 must be between 1 and beam_size=2``)."""
    try:
        return cfg.decode.override(beam_size=beam_size, n_best=n_best, length_penalty=length_penalty,
                                   length_normalization=length_normalization)
    except DecodeOptionError as exc:
        must = re.sub(r"beam_size \((\d+)\)", r"beam_size=\1", exc.must)  # the request's words: beam_size=2
        raise ServiceError(422, "invalid_request", f"{exc.field}={exc.value} must be {must}", exc.field) from exc
