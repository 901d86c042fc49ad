"""HTTP translation service (the optional ``transformer[serve]`` extra: FastAPI and uvicorn).

``create_app(translator, ServeConfig(...))`` builds the FastAPI app; ``transformer serve`` runs it with
uvicorn. The batcher (``serve.batcher``) is plain asyncio and needs neither.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the translation service needs FastAPI and uvicorn: pip install 'transformer[serve]'") from exc

from .app import create_app
from .batcher import Batcher, QueueFull, ShuttingDown
from .errors import ServiceError
from .schemas import ServeConfig

__all__ = ["Batcher", "QueueFull", "ServeConfig", "ServiceError", "ShuttingDown", "create_app"]
