"""``transformer serve``: an HTTP translation service (FastAPI + uvicorn, the ``transformer[serve]`` extra)."""

from __future__ import annotations

import argparse
import logging
import sys

from ..settings import DecodeConfig

log = logging.getLogger(__name__)
MISSING_EXTRA = (
    "transformer serve: error: the translation service needs FastAPI and uvicorn, which are not installed; "
    "install them with: pip install 'transformer[serve]'"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    decode = DecodeConfig()
    parser = subparsers.add_parser(
        "serve",
        help="serve translations over HTTP",
        description=(
            'Serve a trained model over HTTP. POST /translate takes JSON {"text": "..."} or '
            '{"texts": [...]} (optionally "beam_size", "n_best", "length_penalty") and answers '
            '{"translations": [{"text", "score", "n_best"?}]}; GET /health reports the model, the '
            "queue and batching counters; the OpenAPI docs are at /docs and /openapi.json. Texts of "
            "concurrent requests are decoded together in batches. Errors are JSON "
            '{"error": {"code", "message", "field"}}. Needs the optional extra: pip install \'transformer[serve]\'.'
        ),
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="RUN",
        help="run directory (its best checkpoint) or a .safetensors file inside one",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 for all)",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--int8", action="store_true",
                        help="CPU only: int8 linear layers (faster decoding, slightly less accurate; see translate)")
    group = parser.add_argument_group("batching and limits")
    group.add_argument(
        "--max-batch-size", type=int, default=32, metavar="N", help="most texts decoded together (default: %(default)s)"
    )
    group.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help="longest a text waits for others to join its batch (default: %(default)s)",
    )
    group.add_argument(
        "--max-queue",
        type=int,
        default=256,
        metavar="N",
        help="most texts waiting to be decoded; beyond it requests get 503 (default: %(default)s)",
    )
    group.add_argument(
        "--max-text-tokens",
        type=int,
        default=256,
        metavar="N",
        help="most source subword tokens per text; longer texts get 422 (default: %(default)s)",
    )
    group.add_argument(
        "--max-texts", type=int, default=64, metavar="N", help="most texts per request (default: %(default)s)"
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds before an unanswered request gets 504 (default: %(default)s)",
    )
    group = parser.add_argument_group("decoding defaults (a request may override them)")
    group.add_argument(
        "--beam-size",
        type=int,
        default=decode.beam_size,
        metavar="K",
        help="beam size when a request names none; 1 = greedy (default: %(default)s)",
    )
    group.add_argument(
        "--max-beam-size",
        type=int,
        default=16,
        metavar="K",
        help="largest beam size a request may ask for (default: %(default)s)",
    )
    group.add_argument(
        "--length-penalty",
        type=float,
        default=decode.length_penalty,
        metavar="ALPHA",
        help="GNMT length penalty alpha when a request names none (default: %(default)s)",
    )
    group.add_argument(
        "--max-len",
        type=int,
        default=decode.max_len,
        metavar="N",
        help="most output tokens per text (default: source length + 50)",
    )
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
    from ..translator import Translator

    try:
        cfg = ServeConfig(
            max_batch_size=args.max_batch_size,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            max_text_tokens=args.max_text_tokens,
            max_texts=args.max_texts,
            timeout_s=args.timeout,
            beam_size=args.beam_size,
            max_beam_size=args.max_beam_size,
            length_penalty=args.length_penalty,
            max_len=args.max_len,
        )
    except ValueError as e:
        print(f"transformer serve: error: {e}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"transformer serve: error: --port must be in 0..65535, got {args.port}", file=sys.stderr)
        return 2
    try:
        translator = Translator.from_checkpoint(args.checkpoint, device=args.device)
        if args.int8:
            translator.model.set_int8_inference()
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"transformer serve: error: {e}", file=sys.stderr)
        return 1
    log.info("serving %s on http://%s:%d (docs at /docs)", args.checkpoint, args.host, args.port)
    uvicorn.run(create_app(translator, cfg), host=args.host, port=args.port, log_level=args.log_level)
    return 0
