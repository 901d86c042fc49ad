"""One JSON error shape for every failure: ``{"error": {"code": ..., "message": ..., "field": ...}}``.

Covers the service's own errors (``ServiceError``), FastAPI's validation errors (bad JSON -> 400, a bad
field -> 422), Starlette's HTTP errors (404, 405), non-JSON bodies (415) and oversized ones (413, refused
before the body is read), and anything unexpected (500).
"""

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from .batcher import QueueFull, ShuttingDown

T = TypeVar("T")

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error answered as ``{"error": {"code", "message", "field"}}`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers


async def within_timeout(app: FastAPI, job: Awaitable[T], timeout_s: float, what: str, failed_code: str) -> T:
    """``await job`` for at most ``timeout_s``, its failures as ServiceErrors: a full queue or a server shutting
    down -> 503, the timeout -> 504 (counted in ``app.state.timeouts``), anything else -> 500 ``failed_code``;
    ``what`` names the work in the messages ("translation")."""
    try:
        return await asyncio.wait_for(job, timeout_s)
    except ServiceError:
        raise
    except QueueFull as exc:
        raise ServiceError(503, "queue_full", f"{exc}; retry later", headers={"Retry-After": "1"}) from exc
    except ShuttingDown as exc:
        raise ServiceError(503, "unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    except asyncio.TimeoutError as exc:
        app.state.timeouts += 1
        raise ServiceError(
            504, "timeout", f"the {what} did not finish within {timeout_s:g} s; the server is busy"
        ) from exc
    except Exception as exc:
        raise ServiceError(500, failed_code, f"the model failed on this request: {exc}") from exc


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable kind of error, e.g. `text_too_long`, `queue_full`.")
    message: str = Field(description="What is wrong, for people.")
    field: str | None = Field(None, description="The request field at fault (`texts[2]`, `beam_size`), if any.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


def error_response(status: int, code: str, message: str, field: str | None = None, headers=None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class RequireJson:
    """ASGI middleware: POST bodies must be JSON (else 415) and not larger than ``max_body_bytes`` (else 413).

    It runs before FastAPI reads the body, so a form or text body never reaches JSON parsing.
    """

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            problem = self._check(Headers(scope=scope))
            if problem is not None:
                await problem(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, headers: Headers) -> JSONResponse | None:
        content_type = headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        is_json = media_type == "application/json" or (
            media_type.startswith("application/") and media_type.endswith("+json")
        )
        if not is_json:
            shown = repr(content_type) if content_type else "none"
            return error_response(415, "unsupported_media_type", f"Content-Type must be application/json, got {shown}")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return error_response(
                413, "payload_too_large", f"the body has {length} bytes, more than the limit of {self.max_body_bytes}"
            )
        return None


def _field_name(loc: Sequence[Any]) -> str | None:
    """("body", "texts", 2) -> "texts[2]"."""
    parts = [p for p in loc if p != "body"]
    name = ""
    for p in parts:
        name += f"[{p}]" if isinstance(p, int) else (f".{p}" if name else str(p))
    return name or None


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"type": "invalid", "loc": (), "msg": "invalid request"}
    if first["type"] == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        position = first["loc"][1] if len(first["loc"]) > 1 else "?"
        return error_response(400, "invalid_json", f"the body is not valid JSON: {reason} at character {position}")
    field = _field_name(first["loc"])
    if field is None and first["type"] == "missing":
        return error_response(400, "invalid_json", 'the body is empty; send a JSON object like {"text": "..."}')
    if field is None:
        return error_response(422, "invalid_request", f"the body must be a JSON object: {first['msg']}")
    message = f"{field}: {first['msg']}"
    if first["type"] not in ("missing", "extra_forbidden") and not isinstance(first.get("input"), dict | list):
        message += f" (got {first.get('input')!r})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(422, "invalid_request", message, field)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    try:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "http_error"
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %r", exc)
    return error_response(500, "internal_error", f"the server failed on this request: {type(exc).__name__}")


def install_error_handling(app: FastAPI, max_body_bytes: int) -> None:
    """Give every error of ``app`` the JSON error shape; refuse non-JSON and oversized POST bodies."""
    app.add_middleware(RequireJson, max_body_bytes=max_body_bytes)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
