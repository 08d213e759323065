"""Shared test fixtures: where ../shared is, and the model files in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")).resolve()


SHARED = shared_dir()
MODELS = SHARED / "models"
DATA = SHARED / "data"

# Model lookups in tests go to ../shared, never to a user's cache.
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join([str(MODELS), str(MODELS / "converted_from_tfjs")]))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache dir, so recorded hashes and downloads never leak between tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
