"""``transformer serve``: an HTTP translation service (FastAPI + uvicorn, the ``transformer[serve]`` extra)."""

from __future__ import annotations

import argparse
import logging
import sys

from ..decoding.options import DecodeOptions
from .common import (
    UsageError,
    add_decoding_arguments,
    add_model_arguments,
    check_decoding_arguments,
    decode_options,
    load_translator,
)

log = logging.getLogger(__name__)
MISSING_EXTRA = (
    "transformer serve: error: the translation service needs FastAPI and uvicorn, which are not installed; "
    "install them with: pip install 'transformer[serve]'"
)
# Batching and limits: (option, ServeConfig field, type, default, metavar, help).
_LIMITS = (
    ("--max-batch-size", "max_batch_size", int, 32, "N", "most texts decoded together"),
    ("--max-wait-ms", "max_wait_ms", float, 5.0, "MS", "longest a text waits for others to join its batch"),
    ("--max-queue", "max_queue", int, 256, "N", "most texts waiting to be decoded; beyond it requests get 503"),
    ("--max-text-tokens", "max_text_tokens", int, 256, "N",
     "most source subword tokens per text; longer texts get 422"),
    ("--max-texts", "max_texts", int, 64, "N", "most texts per request"),
    ("--timeout", "timeout_s", float, 30.0, "S", "seconds before an unanswered request gets 504"),
    ("--max-beam-size", "max_beam_size", int, 16, "K", "largest beam size (and n-best) a request may ask for"),
    ("--max-attention-weights", "max_attention_weights", int, 250_000, "N",
     "most attention weights POST /attention answers for one text; longer texts get 422"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve translations over HTTP",
        description=(
            'Serve a trained model over HTTP. POST /translate takes JSON {"text": "..."} or '
            '{"texts": [...]} (optionally "beam_size", "n_best", "length_penalty") and answers '
            '{"translations": [{"text", "score", "n_best"?}]}; POST /attention {"text": "..."} answers the '
            "tokens and every attention weight of its translation; GET / is a web page that translates and draws "
            "the attention; GET /health reports the model, the "
            "queue and batching counters; the OpenAPI docs are at /docs and /openapi.json. Texts of "
            "concurrent requests are decoded together in batches. Errors are JSON "
            '{"error": {"code", "message", "field"}}. Needs the optional extra: pip install \'transformer[serve]\'.'
        ),
    )
    add_model_arguments(parser, flags=("--checkpoint",))
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for all)",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    group = parser.add_argument_group("batching and limits")
    for flag, dest, kind, default, metavar, text in _LIMITS:
        group.add_argument(flag, dest=dest, type=kind, default=default, metavar=metavar,
                           help=f"{text} (default: %(default)s)")
    add_decoding_arguments(parser, title="decoding defaults (a request may override them)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve import ServeConfig, create_app
    except ImportError:
        print(MISSING_EXTRA, file=sys.stderr)
        return 1
    try:
        check_decoding_arguments(args)
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port must be in 0..65535, got {args.port}")
        limits = {dest: getattr(args, dest) for _, dest, *_ in _LIMITS}
        ServeConfig(**limits, decode=decode_options(args, DecodeOptions()))  # checked before loading the model
        translator = load_translator(args)
        cfg = ServeConfig(**limits, decode=decode_options(args, translator.decode))
    except (UsageError, ValueError) as e:
        print(f"transformer serve: error: {e}", file=sys.stderr)
        return 2
    log.info("serving %s on http://%s:%d (the web page at /, docs at /docs)", args.checkpoint, args.host, args.port)
    uvicorn.run(create_app(translator, cfg), host=args.host, port=args.port, log_level=args.log_level)
    return 0
