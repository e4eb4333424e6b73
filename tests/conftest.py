"""Shared fixtures. Every test runs with an empty user knowledge dir and its own cache dir,
so nothing on the developer's machine changes what a test sees."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    (home / "knowledge").mkdir()  # set and missing is an error (issue 15), so give each test an empty one
    monkeypatch.setenv("ADVISOR_KNOWLEDGE_DIR", str(home / "knowledge"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("ADVISOR_CACHE_DIR", str(home / "cache" / "advisor"))


@pytest.fixture(scope="session")
def k():
    from advisor.knowledge import load_knowledge

    return load_knowledge(None)
