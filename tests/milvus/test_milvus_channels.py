"""Runs channels_cases.py (Milvus 2.3.5: aliases, no BM25) in a network namespace of its own, where loopback
is the only interface: the server cannot listen on, or send to, anything else."""

from __future__ import annotations

from pathlib import Path

from rag_testkit.tools import pytest_in_network_namespace

HERE = Path(__file__).resolve().parent


def test_channel_cases_in_their_own_network_namespace() -> None:
    pytest_in_network_namespace(HERE / "channels_cases.py", cwd=HERE.parents[1], timeout=900)
