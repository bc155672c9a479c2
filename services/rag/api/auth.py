"""Route guards: the API key (`RAG_API_KEY`) for queries, the admin key (`RAG_ADMIN_KEY`) for operations."""

from __future__ import annotations

import hmac

from fastapi import Request

from ..errors import Forbidden, Unauthorized
from .services import services

__all__ = ["require_admin_key", "require_api_key"]


async def require_api_key(request: Request) -> None:
    """X-API-Key or Authorization: Bearer; open when no key is set."""
    key = services(request).settings.api_key
    if key is None:
        return
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise Unauthorized("missing or wrong API key (X-API-Key or Authorization: Bearer)")


async def require_admin_key(request: Request) -> None:
    """X-Admin-Key; without RAG_ADMIN_KEY the admin routes are off (403), not open."""
    key = services(request).settings.admin_key
    if key is None:
        raise Forbidden("admin endpoints are off: set RAG_ADMIN_KEY to enable them")
    given = request.headers.get("x-admin-key", "")
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise Unauthorized("missing or wrong admin key (X-Admin-Key)")
