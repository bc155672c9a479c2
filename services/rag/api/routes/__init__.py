"""The HTTP routes, one router per concern; `rag.api.app.create_app` assembles them."""

from .admin import router as admin
from .answer import router as answer
from .cache import router as cache
from .documents import router as documents
from .ingest import router as ingest
from .page import router as page
from .probes import router as probes

__all__ = ["admin", "answer", "cache", "documents", "ingest", "page", "probes"]
