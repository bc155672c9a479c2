from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from rag_testkit.tools import free_port, stop, wait_for
from scripted_llm import API_KEY, SERVER, ScriptedLlm


@pytest.fixture(scope="session")
def llm_server() -> Iterator[ScriptedLlm]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", str(port), "--api-key", API_KEY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/_control/health", timeout=30, process=process)
        yield ScriptedLlm(url, process)
    finally:
        stop(process)


@pytest.fixture()
def llm(llm_server: ScriptedLlm) -> ScriptedLlm:
    """The server with an empty script and no recorded calls."""
    llm_server.script()
    return llm_server
