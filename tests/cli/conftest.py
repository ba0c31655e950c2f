"""Fixtures of the command-line tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory with no BIBEV_* variables from the caller's shell (take
    ``database_url`` before this fixture: it reads BIBEV_TEST_DATABASE_URL)."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("BIBEV_")]:
        monkeypatch.delenv(name)
    return tmp_path
