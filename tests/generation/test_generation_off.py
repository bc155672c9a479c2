"""Generation off (the default): no code path imports the LLM client, and /answer is what it was.

Each case runs in a fresh interpreter, because this test process itself has imported the client already."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from scripted_llm import EXTRACTIVE_KEYS, ScriptedLlm

from rag.config import Settings

PROBE = textwrap.dedent(
    """
    import json, sys, time
    from fastapi.testclient import TestClient
    from rag.api import create_app
    from rag.config import Settings

    settings = Settings.model_validate_json(sys.argv[1])
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = client.post("/answer", json={"question": "When was the Eiffel Tower completed?"})
        generative = client.post(
            "/answer", json={"question": "When was the Eiffel Tower completed?", "mode": "generative"}
        )
    print(json.dumps({
        "answer": answer.json(),
        "generative_status": generative.status_code,
        "generative": generative.json(),
        "modules": sorted(m for m in sys.modules if m.startswith("rag.generation")),
    }))
    """
)


def probe(settings: Settings, **changes: Any) -> dict[str, Any]:
    configured = {**json.loads(settings.model_dump_json()), "warmup": False, **changes}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(configured)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "RAG_LOG_LEVEL": "WARNING"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_generation_off_never_imports_the_client(
    settings: Settings, sample_bundle: Path, llm_server: ScriptedLlm
) -> None:
    off = probe(settings, bundle_dir=str(sample_bundle))
    assert off["answer"]["evidence"] and set(off["answer"]) == EXTRACTIVE_KEYS
    assert off["generative_status"] == 422
    assert off["generative"]["error_type"] == "generation_not_configured"
    assert "rag.generation.client" not in off["modules"] and "rag.generation.service" not in off["modules"]
    # The same probe notices the client when generation is on (so the check above can fail), and an
    # extractive answer is the same either way.
    on = probe(
        settings,
        bundle_dir=str(sample_bundle),
        generation_base_url=llm_server.base_url,
        generation_model="scripted-model",
    )
    assert "rag.generation.client" in on["modules"]
    for key in ("answer", "evidence", "abstained", "confidence", "corpus_id"):
        assert on["answer"][key] == off["answer"][key]
