"""The HTTP service: `create_app()` over the one Pipeline (run it with gunicorn, see `rag.api.gunicorn_conf`).

The app is imported on first use, not with the package: gunicorn imports `rag.api.gunicorn_conf` (and so this
package) before it forks, and the config must choose Prometheus' multiprocess directory before anything
imports prometheus_client, which fixes its metric storage at import time (an app imported here first left
every worker's metrics in memory and `/metrics` empty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app, load_pipeline

__all__ = ["create_app", "load_pipeline"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
