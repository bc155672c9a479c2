"""Secrets never shown: every secret-bearing setting set (the settings under test), then every route a client
can reach and the server's whole log searched for each value; the same for a start that fails on a setting."""

from __future__ import annotations

from pathlib import Path

import httpx
from rag_testkit.launch import Started, make_run

SECRET_SETTINGS = {
    "RAG_API_KEY": "api-key-7f3a9c1e",
    "RAG_ADMIN_KEY": "admin-key-5d2b8e4f",
    "RAG_GENERATION_API_KEY": "llm-key-9a6c3f0b",
    "RAG_S3_ENDPOINT_URL": "http://s3user-1c4e:s3pass-8b2d6a@127.0.0.1:9",
    "RAG_GENERATION_BASE_URL": "http://llmuser-3f7a:llmpass-0e5c9d@127.0.0.1:9/v1",
    "RAG_GENERATION_MODEL": "scripted-model",
}
SECRET_VALUES = [
    "api-key-7f3a9c1e",
    "admin-key-5d2b8e4f",
    "llm-key-9a6c3f0b",
    "s3user-1c4e",
    "s3pass-8b2d6a",
    "llmuser-3f7a",
    "llmpass-0e5c9d",
]


def shown(response: httpx.Response) -> str:
    return f"{response.status_code} {dict(response.headers)} {response.text}"


def test_no_route_and_no_log_line_shows_a_secret(gunicorn: Started) -> None:
    service = gunicorn(**SECRET_SETTINGS)
    key = {"x-api-key": SECRET_SETTINGS["RAG_API_KEY"]}
    admin = {"x-admin-key": SECRET_SETTINGS["RAG_ADMIN_KEY"]}
    with httpx.Client(base_url=service.url, timeout=30) as client:
        responses = [
            client.get("/health"),
            client.get("/ready"),
            client.get("/metrics"),
            client.get("/openapi.json"),
            client.get("/docs"),
            client.get("/info"),
            client.get("/info", headers=key),
            client.get("/cache/stats", headers=key),
            client.post("/answer", json={"question": "When was the Eiffel Tower completed?"}, headers=key),
            client.post("/answer", json={"question": ""}, headers=key),
            client.post("/answer", json={"question": "x"}, headers={"x-api-key": "wrong"}),
            client.post("/admin/reload", headers=admin),
            client.post("/cache/purge", headers=admin),
            client.get("/no-such-route"),
        ]
    info = responses[6].json()
    assert info["settings"]["s3_endpoint_url"] == "http://***@127.0.0.1:9"
    assert info["settings"]["generation_base_url"] == "http://***@127.0.0.1:9/v1"
    assert responses[8].status_code == 200 and responses[11].status_code == 403
    everything = "\n".join(shown(r) for r in responses) + service.tail(10_000_000)
    for secret in SECRET_VALUES:
        assert secret not in everything, secret


def test_a_settings_error_at_start_names_the_setting_and_no_secret(
    tmp_path: Path, sample_bundle: Path
) -> None:
    # A check across settings: pydantic's own message would quote every input value, the keys included.
    settings = {**SECRET_SETTINGS, "RAG_GENERATION_MODEL": ""}
    service = make_run(tmp_path, bundle=sample_bundle, env=settings, wait_ready=False)
    assert service.process.wait(60) != 0
    log = service.tail(1_000_000)
    assert "invalid settings" in log and "RAG_GENERATION_BASE_URL needs RAG_GENERATION_MODEL" in log, log[
        -2000:
    ]
    for secret in SECRET_VALUES:
        assert secret not in log, secret
