"""JSON log lines: one object per line, with the request id and any `extra=` fields a call passes; secrets and
URL credentials masked (rag.redact)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..redact import redact

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out, default=str, ensure_ascii=False))


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(level: str, json_lines: bool) -> None:
    """Set up the `rag` logger once (idempotent: app factories may run several times in one process)."""
    logger = logging.getLogger("rag")
    logger.setLevel(level.upper())
    if any(getattr(h, "_rag", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else PlainFormatter("%(levelname)s %(name)s %(message)s")
    )
    handler._rag = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
