"""The model store: lookup order, hash checks, atomic verified downloads from a real local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading

import pytest

from piposer.errors import ModelError, PiposerError
from piposer.modelstore import ModelInfo, ModelStore, Source

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


def store_with(tmp_path, info: ModelInfo | None = None, dirs=()) -> ModelStore:
    """A store over `dirs` with its own cache and trust file, knowing only `info` when given."""
    store = ModelStore(tuple(dirs), tmp_path / "cache", tmp_path / "cache" / "known_hashes.json")
    if info is not None:
        store.__dict__["manifest"] = {info.name: info}
    return store


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_lists_every_shared_model_with_its_hash():
    store = ModelStore.from_environment()
    manifest = store.manifest
    for name in ("posenet", "posenet-stride8", "posenet-stride32", "blazepose-detector", "blazepose-full"):
        resolved = store.resolve(name)
        assert resolved.info.name == name
        assert sha(resolved.path) == next(s.sha256 for s in manifest[name].sources if s.file == resolved.path.name)


def test_lookup_order_env_dirs_first(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    shutil.copy(POSENET, second / POSENET.name)
    store = ModelStore.from_environment({"PIPOSER_MODEL_DIR": f"{first}:{second}", "XDG_CACHE_HOME": str(tmp_path)})
    assert store.search_dirs[:2] == (first, second) and store.cache_dir == tmp_path / "piposer" / "models"
    assert store.resolve("posenet").path == second / POSENET.name


def test_missing_model_says_where_it_looked_and_how_to_fetch(tmp_path):
    with pytest.raises(ModelError) as err:
        store_with(tmp_path, dirs=[tmp_path]).resolve("posenet-stride8")
    message = str(err.value)
    assert str(tmp_path) in message and "piposer models fetch posenet-stride8" in message


def test_wrong_hash_is_refused(tmp_path):
    changed = bytearray(POSENET.read_bytes())
    changed[-1] ^= 0xFF  # same size, one byte different
    (tmp_path / POSENET.name).write_bytes(bytes(changed))
    with pytest.raises(ModelError, match="has sha256 .* expected ee84b06b"):
        store_with(tmp_path, dirs=[tmp_path]).resolve("posenet")


def test_fetch_downloads_and_verifies(server, tmp_path):
    www, url = server
    shutil.copy(POSENET, www / "m.tflite")
    dest = tmp_path / "models"
    path = store_with(tmp_path, entry(f"{url}/m.tflite", sha(POSENET))).fetch("m", dest)
    assert path == dest / "m.tflite" and sha(path) == sha(POSENET)
    assert [p.name for p in dest.iterdir()] == ["m.tflite"]  # no temp file left


def test_fetch_with_wrong_hash_leaves_nothing(server, tmp_path):
    www, url = server
    (www / "m.tflite").write_bytes(b"corrupted download")
    dest = tmp_path / "models"
    with pytest.raises(PiposerError, match="could not fetch model 'm': m.tflite: downloaded file has sha256"):
        store_with(tmp_path, entry(f"{url}/m.tflite", "0" * 64)).fetch("m", dest)
    assert list(dest.iterdir()) == []


def test_unreachable_url_is_a_clear_error(tmp_path):
    with pytest.raises(PiposerError, match="could not fetch model 'm'"):
        store_with(tmp_path, entry("http://127.0.0.1:9/m.tflite", "0" * 64)).fetch("m", tmp_path)


def test_official_file_without_hash_is_checked_by_tensors_and_pinned_on_first_use(server, tmp_path):
    """Google's multi_person file has no known hash here: trust its tensors once, then insist on that hash."""
    www, url = server
    shutil.copy(POSENET, www / "m.tflite")
    store = store_with(tmp_path, entry(f"{url}/m.tflite"))
    path = store.fetch("m", tmp_path / "models")
    assert store.known_hashes() == {"m.tflite": sha(POSENET)}
    path.write_bytes(path.read_bytes()[:-1] + b"\0")  # tampered later
    with pytest.raises(PiposerError, match="expected " + sha(POSENET)):
        store.fetch("m", tmp_path / "models")


def test_resolving_an_unhashed_file_writes_nothing_and_verify_records_it(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(POSENET, models / "m.tflite")
    store = store_with(tmp_path, entry(""), dirs=[models])
    resolved = store.resolve("m")
    assert resolved.first_use and resolved.sha256 == sha(POSENET)
    assert not store.trust_file.exists() and not store.cache_dir.exists()
    assert store.verify("m").first_use and store.known_hashes() == {"m.tflite": sha(POSENET)}
    assert not store.resolve("m").first_use


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"m.tflite": 5}', b"\xff\xfe"])
def test_corrupt_trust_file_is_an_error_not_a_reset(tmp_path, content):
    """A reset would let a changed model pass as new: refuse, naming the file."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(POSENET, models / "m.tflite")
    store = store_with(tmp_path, entry(""), dirs=[models])
    store.trust_file.parent.mkdir(parents=True)
    store.trust_file.write_bytes(content)
    for attempt in (lambda: store.resolve("m"), lambda: store.verify("m")):
        with pytest.raises(ModelError, match=f"trust file {store.trust_file} "):
            attempt()
    assert store.trust_file.read_bytes() == content


def test_unhashed_download_with_wrong_tensors_is_refused(server, tmp_path):
    www, url = server
    shutil.copy(MODELS / "pose_landmark_lite.tflite", www / "m.tflite")
    store = store_with(tmp_path, entry(f"{url}/m.tflite"))
    with pytest.raises(PiposerError, match="does not look like 'm'"):
        store.fetch("m", tmp_path)
    assert store.known_hashes() == {}
    assert not (tmp_path / "m.tflite").exists()
