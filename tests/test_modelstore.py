"""The model store: lookup order, hash checks, atomic verified downloads from a real local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from piposer import modelstore
from piposer.errors import PiposerError
from piposer.modelstore import ModelInfo, Source

from conftest import MODELS

POSENET = MODELS / "converted_from_tfjs" / "posenet_mobilenet_v1_075_stride16_float.tflite"


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on a free loopback port serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def entry(url: str, sha256: str = "", file: str = "m.tflite") -> ModelInfo:
    return ModelInfo(name="m", family="posenet", description="", input=(353, 257), layout="coco17", stride=16,
                     sources=(Source(file=file, sha256=sha256, url=url),))


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_shared_model_with_its_hash():
    manifest = modelstore.load_manifest()
    for name in ("posenet", "posenet-stride8", "posenet-stride32", "blazepose-detector", "blazepose-full"):
        resolved = modelstore.resolve(name, manifest)
        assert resolved.info.name == name
        assert sha(resolved.path) == next(s.sha256 for s in manifest[name].sources if s.file == resolved.path.name)


def test_lookup_order_env_dirs_first(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    shutil.copy(POSENET, second / POSENET.name)
    monkeypatch.setenv("PIPOSER_MODEL_DIR", f"{first}:{second}")
    assert modelstore.resolve("posenet").path == second / POSENET.name


def test_missing_model_says_where_it_looked_and_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPOSER_MODEL_DIR", str(tmp_path))
    with pytest.raises(PiposerError) as err:
        modelstore.resolve("posenet-stride8")
    message = str(err.value)
    assert str(tmp_path) in message and "piposer models fetch posenet-stride8" in message


def test_wrong_hash_is_refused(tmp_path, monkeypatch):
    (tmp_path / POSENET.name).write_bytes(b"not a model")
    monkeypatch.setenv("PIPOSER_MODEL_DIR", str(tmp_path))
    with pytest.raises(PiposerError, match="has sha256 .* expected ee84b06b"):
        modelstore.resolve("posenet")


def test_fetch_downloads_and_verifies(server, tmp_path):
    www, url = server
    shutil.copy(POSENET, www / "m.tflite")
    dest = tmp_path / "models"
    path = modelstore.fetch(entry(f"{url}/m.tflite", sha(POSENET)), dest)
    assert path == dest / "m.tflite" and sha(path) == sha(POSENET)
    assert [p.name for p in dest.iterdir()] == ["m.tflite"]  # no temp file left


def test_fetch_with_wrong_hash_leaves_nothing(server, tmp_path):
    www, url = server
    (www / "m.tflite").write_bytes(b"corrupted download")
    dest = tmp_path / "models"
    with pytest.raises(PiposerError, match="could not fetch model 'm': m.tflite: downloaded file has sha256"):
        modelstore.fetch(entry(f"{url}/m.tflite", "0" * 64), dest)
    assert list(dest.iterdir()) == []


def test_unreachable_url_is_a_clear_error(tmp_path):
    with pytest.raises(PiposerError, match="could not fetch model 'm'"):
        modelstore.fetch(entry("http://127.0.0.1:9/m.tflite", "0" * 64), tmp_path)


def test_official_file_without_hash_is_checked_by_tensors_and_pinned_on_first_use(server, tmp_path):
    """Google's multi_person file has no known hash here: trust its tensors once, then insist on that hash."""
    www, url = server
    shutil.copy(POSENET, www / "m.tflite")
    info = entry(f"{url}/m.tflite")
    path = modelstore.fetch(info, tmp_path / "models")
    assert modelstore._known_hashes() == {"m.tflite": sha(POSENET)}
    path.write_bytes(path.read_bytes()[:-1] + b"\0")  # tampered later
    with pytest.raises(PiposerError, match="expected " + sha(POSENET)):
        modelstore.fetch(info, tmp_path / "models")


def test_unhashed_download_with_wrong_tensors_is_refused(server, tmp_path):
    www, url = server
    shutil.copy(MODELS / "pose_landmark_lite.tflite", www / "m.tflite")
    with pytest.raises(PiposerError, match="does not look like 'm'"):
        modelstore.fetch(entry(f"{url}/m.tflite"), tmp_path)
    assert modelstore._known_hashes() == {}
    assert not (tmp_path / "m.tflite").exists()
