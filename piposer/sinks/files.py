"""Image files in, results out: one JSON document per image, per-frame pose tables, annotated video.

Every file is written to a temporary name beside its target and renamed over it only when it is
complete and checked (every write, an fsync, and for video a read-back of the finished file), so a
full disk or an interrupted run leaves neither a half-written file nor a damaged previous one: a
failure is an OutputError naming the file, and the temp file is gone.

Existing files are never overwritten unless asked: a numbered name (`out-1.mp4`) is chosen instead.
The final name is reserved when the file is opened (an empty placeholder created with O_EXCL, which
the final rename replaces), so two runs writing "the same" name get different ones.

Files are created with mode 0o666 less the umask, like any other tool's output.
"""

from __future__ import annotations

import atexit
import csv
import json
import os
import secrets
import threading
from pathlib import Path

import cv2
import numpy as np

from . import Sink
from ..errors import OutputError, PiposerError
from ..layouts import to_layout
from ..types import Frame, Layout, Pose, pose_to_dict

DATA_FORMATS = (".csv", ".tsv", ".jsonl", ".txt")
MGT_NAMES = {"head_top": "Head"}  # MGT-python spells MPI's first point "Head"

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _numbered(path: Path, n: int) -> Path:
    return path if n == 0 else path.with_name(f"{path.stem}-{n}{path.suffix}")


def free_path(path: Path, overwrite: bool) -> Path:
    """`path` itself if it is free (or may be overwritten), else the first free `stem-N.suffix`.

    Only a guess: another process may take the name before it is written. AtomicFile(path,
    overwrite=...) reserves the name atomically and is what writers should be given instead.
    """
    if overwrite or not os.path.lexists(path):
        return path
    n = 1
    while os.path.lexists(candidate := _numbered(path, n)):
        n += 1
    return candidate


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system can sync a directory; the data itself was synced
    finally:
        os.close(fd)


_live: set[AtomicFile] = set()  # not yet committed or discarded; discard_all() removes their files
_live_lock = threading.Lock()


def discard_all() -> None:
    """Discard every AtomicFile not yet committed (their temp files and name reservations).

    Runs at interpreter exit (one module-level atexit hook); a signal handler may call it too.
    """
    with _live_lock:
        live = list(_live)
    for f in live:
        f.discard()


atexit.register(discard_all)


class AtomicFile:
    """A temp file beside `target` that becomes `target` on commit() and vanishes on discard().

    `overwrite`: False reserves `target`, or the first free `stem-N.suffix`, atomically; True replaces
    an existing `target` at commit (and reserves it if it is free); None (the default, for a target
    already chosen with free_path) replaces `target` if it exists and reserves it otherwise.
    The chosen name is `self.target`; the file to write is `self.path`.

    As a context manager it discards on exit whatever was not committed: commit is always explicit.
    discard() may be called any number of times, and after commit() does nothing.
    """

    def __init__(self, target: Path, overwrite: bool | None = None):
        target = Path(target)
        self._placeholder: tuple[int, int] | None = None  # (st_dev, st_ino) of our reservation
        self.path: Path | None = None
        self.committed = False
        self.closed = False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.target = self._reserve(target, overwrite)
            self.path = self._make_temp()
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {target}: {_why(exc)}") from exc
        with _live_lock:
            _live.add(self)

    def _reserve(self, target: Path, overwrite: bool | None) -> Path:
        if overwrite is None:
            overwrite = os.path.lexists(target)
        n = 0
        while True:
            candidate = _numbered(target, n)
            try:
                fd = os.open(candidate, _CREATE, 0o666)
            except FileExistsError:
                if overwrite and n == 0:
                    return target  # replaced at commit; untouched until then
                n += 1
                continue
            try:
                st = os.fstat(fd)
                self._placeholder = (st.st_dev, st.st_ino)
            finally:
                os.close(fd)
            return candidate

    def _make_temp(self) -> Path:
        while True:
            path = self.target.with_name(f".{self.target.stem}.{secrets.token_hex(4)}{self.target.suffix}")
            try:
                os.close(os.open(path, _CREATE, 0o666))  # 0o666 less the umask, unlike mkstemp's 0o600
            except FileExistsError:
                continue
            return path

    def fail(self, exc: BaseException | str) -> OutputError:
        """Discard, and return the OutputError (naming the target) for the caller to raise."""
        self.discard()
        return OutputError(f"cannot write {self.target}: {exc if isinstance(exc, str) else _why(exc)}")

    def commit(self) -> Path:
        """Sync the temp file and rename it over the target; OutputError (and discard) if that fails."""
        if self.committed:
            return self.target
        if self.closed:
            raise OutputError(f"cannot write {self.target}: already discarded")
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.path, self.target)
        except OSError as exc:
            raise self.fail(exc) from exc
        self.committed = self.closed = True
        self._forget()
        _fsync_dir(self.target.parent)
        return self.target

    def discard(self) -> None:
        """Remove the temp file and the name reservation; safe to call again, a no-op after commit."""
        if self.closed:
            return
        self.closed = True
        if self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass
        if self._placeholder is not None:
            try:  # only our own empty placeholder, never a file someone else put there
                st = os.lstat(self.target)
                if (st.st_dev, st.st_ino) == self._placeholder and st.st_size == 0:
                    os.unlink(self.target)
            except OSError:
                pass
        self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def finish(self, commit: bool) -> Path | None:
        """Commit (returning the target) or discard (returning None)."""
        if commit:
            return self.commit()
        self.discard()
        return None

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def write_bytes(target: Path, data: bytes, overwrite: bool | None = None) -> Path:
    """`data` as `target` (see AtomicFile for `overwrite`); returns the name written, OutputError if not."""
    with AtomicFile(target, overwrite) as f:
        try:
            with open(f.path, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            raise f.fail(exc) from exc
        return f.commit()


def replace_text(target: Path, text: str, new_mode: int = 0o640) -> Path:
    """Replace (or create) a settings file atomically, keeping an existing file's mode, owner and group
    (so `sudo` editing a file the service reads leaves it readable); a new one gets `new_mode`."""
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    with AtomicFile(target, overwrite=True) as f:
        try:
            f.path.write_text(text, encoding="utf-8")
            os.chmod(f.path, st.st_mode & 0o7777 if st else new_mode)
            if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.chown(f.path, st.st_uid, st.st_gid)
        except OSError as exc:
            raise f.fail(exc) from exc
        return f.commit()


def write_image(target: Path, image: np.ndarray, overwrite: bool | None = None) -> Path:
    ok, buf = cv2.imencode(target.suffix or ".jpg", image)
    if not ok:
        raise PiposerError(f"cannot encode image as {target.suffix}: {target}")
    return write_bytes(target, buf.tobytes(), overwrite)


def image_document(source: str, frame: Frame, poses: list[Pose], model: str) -> dict:
    """The JSON document written for one image."""
    return {"image": source, "width": frame.width, "height": frame.height, "model": model,
            "poses": [pose_to_dict(p) for p in poses]}


def table_header(layout: Layout) -> list[str]:
    """time, frame, person, pose score (and for hands their handedness), then x/y/score per keypoint
    (MGT-python's pose-data shape)."""
    cols = ["time", "frame", "person", "score"] + (["handedness"] if layout.handed else [])
    for name in layout.keypoints:
        cols += [f"{name}_x", f"{name}_y", f"{name}_score"]
    return cols


class OutputFile:
    """What a file being written by a writer shares: `finish()` commits it, `close()` without it discards it
    (unless already finished; safe to call again), and `with` closes. Subclasses set `file` (an AtomicFile)
    and `target`, and implement `finish()` and `_release()` (close their handle without committing)."""

    file: AtomicFile
    target: Path

    def finish(self) -> Path:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def close(self, commit: bool = False) -> Path | None:
        """commit=True is finish(); otherwise discard unless already finished."""
        if commit:
            return self.finish()
        self._release()
        self.file.discard()
        return self.target if self.file.committed else None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def data_targets(video: str, specs: list[str]) -> list[Path]:
    """The data files `--data` asks for: a path as given, or a bare format (`csv`) as MGT-python names its
    output, `<video stem>_pose.csv` beside the video. An unknown format is an error before anything is written."""
    targets = [Path(video).with_name(f"{Path(video).stem}_pose.{spec}") if "." + spec in DATA_FORMATS else Path(spec)
               for spec in specs]
    for target in targets:
        if target.suffix not in DATA_FORMATS:
            raise PiposerError(f"--data {target}: unknown format '{target.suffix}' (use {', '.join(DATA_FORMATS)})")
    if len(set(targets)) < len(targets):
        raise PiposerError(f"--data: {', '.join(sorted({str(t) for t in targets if targets.count(t) > 1}))} given twice")
    return targets


def mgt_header(layout: Layout) -> list[str]:
    """MGT-python's pose txt columns: Time, then "<Name> X", "<Name> Y" per keypoint in its OpenPose spelling."""
    names = [MGT_NAMES.get(n, n.replace("_", " ").title()) for n in layout.keypoints]
    return ["Time"] + [f"{name} {axis}" for name in names for axis in ("X", "Y")]


class PoseDataWriter(OutputFile, Sink):
    """Per-frame pose data as CSV/TSV (one row per person and frame), JSON Lines (one object per frame) or
    MGT-python's txt (one row per frame, the first person only, as MGT's OpenPose data has one person).

    A keypoint that is not detected has empty x/y cells in CSV/TSV, `detected: false` in JSONL and 0 0 in
    txt (MGT's convention; its x/y are normalized, its time in whole milliseconds). Poses are written in
    `layout` (converted from the model's where it differs, piposer/layouts.py).
    A sink: finish() commits and returns the name written; close() discards unless finished.
    Any failed write is an OutputError naming the file (and the temp file is removed).
    """

    name = "data"

    def __init__(self, target: Path, layout: Layout, fps: float, overwrite: bool | None = None):
        target = Path(target)
        if target.suffix not in DATA_FORMATS:
            raise PiposerError(f"--data {target}: unknown format '{target.suffix}' (use {', '.join(DATA_FORMATS)})")
        self.file = AtomicFile(target, overwrite)
        self.target = self.file.target
        self.fps = fps or 30.0
        self.layout = layout
        self._write = {".jsonl": self._jsonl_line, ".txt": self._mgt_row}.get(target.suffix, self._table_rows)
        try:
            self._fh = open(self.file.path, "w", newline="")
            if target.suffix == ".txt":
                self._fh.write(" ".join(mgt_header(layout)) + "\n")
            elif target.suffix != ".jsonl":
                self._csv = csv.writer(self._fh, delimiter="\t" if target.suffix == ".tsv" else ",")
                self._csv.writerow(table_header(layout))
        except OSError as exc:
            self._release()
            raise self.file.fail(exc) from exc

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        if self.file.closed:
            raise OutputError(f"cannot write {self.target}: already {'written' if self.file.committed else 'discarded'}")
        try:
            self._write(frame.index, [to_layout(p, self.layout) for p in poses])
        except OSError as exc:
            self._release()
            raise self.file.fail(exc) from exc

    def _jsonl_line(self, index: int, poses: list[Pose]) -> None:
        self._fh.write(json.dumps({"time": round(index / self.fps, 4), "frame": index,
                                   "poses": [pose_to_dict(p) for p in poses]}) + "\n")

    def _table_rows(self, index: int, poses: list[Pose]) -> None:
        t = round(index / self.fps, 4)
        for i, pose in enumerate(poses):
            row: list = [t, index, pose.track_id if pose.track_id is not None else i, round(pose.score, 4)]
            if self.layout.handed:
                row.append(pose.handedness)
            for k in pose.keypoints:
                row += [round(k.x, 1), round(k.y, 1), round(k.score, 4)] if k.detected else ["", "", round(k.score, 4)]
            self._csv.writerow(row)

    def _mgt_row(self, index: int, poses: list[Pose]) -> None:
        keypoints = poses[0].keypoints if poses else ()
        xy = [f"{v:.15f}" for k in keypoints for v in ((k.nx, k.ny) if k.detected else (0.0, 0.0))]
        zeros = ["0.000000000000000"] * (2 * len(self.layout.keypoints) - len(xy))
        self._fh.write(" ".join([str(round(index / self.fps * 1000))] + xy + zeros) + "\n")

    def _release(self) -> None:
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            try:
                fh.close()
            except OSError:
                pass  # the buffered rest cannot be written either; the file is being discarded

    def finish(self) -> Path:
        """Flush and commit; returns the name written. OutputError (file discarded) if any write failed."""
        if not self.file.closed:
            try:
                self._fh.close()
            except OSError as exc:
                raise self.file.fail(exc) from exc
        return self.file.commit()



class VideoWriter(OutputFile):
    """An annotated MP4, written under a temp name and renamed when complete and checked.

    OpenCV reports no write errors, so finish() checks the released file: not empty, openable by
    cv2.VideoCapture, and holding exactly the frames written (its last frame readable). `size` None:
    taken from the first frame. close() discards unless finished; commit=True is finish().
    """

    def __init__(self, target: Path, fps: float, size: tuple[int, int] | None, overwrite: bool | None = None):
        self.file = AtomicFile(Path(target), overwrite)
        self.target = self.file.target
        self.fps = fps or 30.0
        self.size = size
        self.frames = 0
        self._writer = None
        if size is not None:
            self._open(size)

    def _open(self, size: tuple[int, int]) -> None:
        self.size = size
        self._writer = cv2.VideoWriter(str(self.file.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, size)
        if not self._writer.isOpened():
            self._writer = None
            raise self.file.fail("cannot open a video writer")

    def write(self, image: np.ndarray) -> None:
        if self.file.closed:
            raise OutputError(f"cannot write {self.target}: already {'written' if self.file.committed else 'discarded'}")
        if self._writer is None:
            self._open((image.shape[1], image.shape[0]))
        if (image.shape[1], image.shape[0]) != tuple(self.size):  # OpenCV would drop it silently
            raise self.file.fail(f"frame {self.frames} is {image.shape[1]}x{image.shape[0]}, "
                                 f"not {self.size[0]}x{self.size[1]}")
        self._writer.write(image)
        self.frames += 1

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def _check(self) -> str | None:
        """What is wrong with the released temp file, or None."""
        try:
            size = os.path.getsize(self.file.path)
        except OSError as exc:
            return _why(exc)
        if self.frames == 0:
            return "no frames were written"
        if size == 0:
            return "the video is empty (disk full?)"
        cap = cv2.VideoCapture(str(self.file.path))
        try:
            if not cap.isOpened():
                return "the written video cannot be opened (disk full?)"
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            if count != self.frames:
                return f"the written video has {count} frames, not {self.frames} (disk full?)"
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.frames - 1)
            if not cap.read()[0]:
                return "the last frame of the written video cannot be read (disk full?)"
        finally:
            cap.release()
        return None

    def finish(self) -> Path:
        """Release, check and commit; returns the name written. OutputError (file discarded) if not good."""
        if not self.file.closed:
            self._release()
            if problem := self._check():
                raise self.file.fail(problem)
        return self.file.commit()



class VideoSink(Sink):
    """The poses drawn on each frame into an MP4 (a VideoWriter sized from the first frame), as a sink;
    in `layout` when given (e.g. OpenPose's COCO-18 skeleton, neck included), else the model's own.

    finish() checks and commits, returning the name written; close() discards unless finished.
    """

    name = "video"

    def __init__(self, target: Path, fps: float, overlay: frozenset[str], mirrored: bool = False,
                 overwrite: bool | None = None, layout: Layout | None = None):
        self.writer = VideoWriter(target, fps, None, overwrite)
        self.target = self.writer.target
        self.overlay, self.mirrored, self.layout = overlay, mirrored, layout

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        from .render import draw

        if self.layout is not None:
            poses = [to_layout(p, self.layout) for p in poses]
        self.writer.write(draw(frame.image, poses, self.overlay, mirrored=self.mirrored))

    def finish(self) -> Path:
        return self.writer.finish()

    def close(self) -> None:
        self.writer.close()
