"""Secrets kept out of whatever the service shows or logs: API keys, and credentials inside URLs.

The settings register their secret values once (`remember`); `redact` then replaces them, and the userinfo
of any URL (`scheme://user:password@host`), in text bound for a client or a log line: error messages,
`/ready` reasons, `/info`, and every JSON log record (a library's message may quote an endpoint URL).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "mask_url", "redact", "remember", "url_credentials"]

MASK = "***"
_USERINFO = re.compile(r"(?<=://)[^/@\s'\"]+@")
_known: set[str] = set()
_lock = threading.Lock()


def mask_url(value: str) -> str:
    """`value` with the userinfo of its URL (if any) masked: http://***@host:9000/path."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return redact(value)
    if not parts.scheme or "@" not in parts.netloc:
        return value
    return urlunsplit(parts._replace(netloc=f"{MASK}@{parts.netloc.rsplit('@', 1)[1]}"))


def url_credentials(value: str) -> list[str]:
    """The userinfo of a URL, and its user and password apart (empty for anything else)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return []
    if not parts.scheme or "@" not in parts.netloc:
        return []
    userinfo = parts.netloc.rsplit("@", 1)[0]
    return [userinfo, *(p for p in (parts.username, parts.password) if p)]


def remember(secrets: Iterable[str]) -> None:
    """Values never to show (short ones are ignored: masking every "a" would mangle text, not protect it)."""
    with _lock:
        _known.update(s for s in secrets if len(s) >= 4)


def redact(text: str) -> str:
    text = _USERINFO.sub(f"{MASK}@", text)
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
