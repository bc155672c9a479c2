"""The HTTP routes, one router per concern; `rag.api.app.create_app` assembles them."""

from .admin import router as admin
from .answer import router as answer
from .cache import router as cache
from .ingest import router as ingest
from .probes import router as probes

__all__ = ["admin", "answer", "cache", "ingest", "probes"]
