"""The HTTP service: `create_app()` over the one Pipeline (run it with gunicorn, see `rag.api.gunicorn_conf`)."""

from .app import create_app, load_pipeline

__all__ = ["create_app", "load_pipeline"]
