"""The README's reference tables are the code's: one exception tree, each error with its status."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import rag
from rag import errors
from rag.errors import RagError
from rag.reference import _subclasses, rewrite

README = Path(__file__).resolve().parents[1] / "README.md"


def _import_every_module() -> None:
    for module in pkgutil.walk_packages(rag.__path__, prefix="rag."):
        # gunicorn_conf configures the process it is imported into; a __main__ runs its command
        if module.name != "rag.api.gunicorn_conf" and not module.name.endswith(".__main__"):
            importlib.import_module(module.name)


def test_every_error_lives_in_rag_errors_with_a_status_and_a_meaning() -> None:
    _import_every_module()
    tree = [c for c in _subclasses(RagError) if c.__module__.split(".")[0] == "rag"]  # not tests' own
    assert len(tree) > 20
    outside = [f"{c.__module__}.{c.__qualname__}" for c in tree if c.__module__ != errors.__name__]
    assert outside == []
    for cls in tree[1:]:
        assert 400 <= cls.status < 600 and cls.error_type and cls.__doc__, cls
    assert {c.__name__ for c in tree} == set(errors.__all__)


def test_the_readme_tables_match_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    assert rewrite(text) == text, "README tables are stale: run `python -m rag.reference README.md`"


def test_every_setting_is_in_one_group_and_says_what_it_does() -> None:
    from rag.config import SETTINGS_GROUPS, Settings

    grouped = [name for model in SETTINGS_GROUPS.values() for name in model.model_fields]
    assert sorted(grouped) == sorted(Settings.model_fields)  # each exactly once
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []
