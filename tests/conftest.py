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

# Models ../shared lacks (MediaPipe's hand models) are fetched once into the repo's models/ (its *.tflite are
# gitignored) and kept there between runs.
FETCHED = ROOT / "models"
HAND_MODELS = ("hands-full", "hands-lite", "palm-detection-full", "palm-detection-lite")

# Model lookups in tests go to ../shared and models/, never to a user's cache.
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join([str(MODELS), str(MODELS / "converted_from_tfjs")]))
os.environ["PIPOSER_MODEL_DIR"] += os.pathsep + str(FETCHED)


@pytest.fixture(scope="session")
def hand_models():
    """MediaPipe's hand models, fetched by the real model store if missing (official URL, else the mediapipe
    wheel through pip) and checked against the manifest's sha256."""
    from piposer.modelstore import ModelStore

    store = ModelStore.from_environment()
    for name in HAND_MODELS:
        if not any((FETCHED / s.file).is_file() for s in store.info(name).sources):
            store.fetch(name, FETCHED)
        store.resolve(name)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache dir, so recorded hashes and downloads never leak between tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
