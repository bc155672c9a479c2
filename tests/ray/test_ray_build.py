"""Runs ray_cases.py (a 2-node Ray cluster on loopback) in a network namespace of its own: outside one, Ray may
bind the machine's external interface even when asked for 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from rag_testkit.tools import pytest_in_network_namespace

HERE = Path(__file__).resolve().parent


def test_ray_cases_in_their_own_network_namespace() -> None:
    pytest_in_network_namespace(HERE / "ray_cases.py", cwd=HERE.parents[1], timeout=1200)
