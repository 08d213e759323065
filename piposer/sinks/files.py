"""Image files in, results out: one JSON document per image, per-frame pose tables, annotated video.

Every file is written to a temporary name beside its target and renamed when complete, so an
interrupted run leaves nothing half-written. Existing files are never overwritten unless asked:
a numbered name (`out-1.mp4`) is chosen instead.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import PiposerError
from ..types import Frame, Layout, Pose, pose_to_dict

DATA_FORMATS = (".csv", ".tsv", ".jsonl")


def free_path(path: Path, overwrite: bool) -> Path:
    """`path` itself if it is free (or may be overwritten), else the first free `stem-N.suffix`."""
    if overwrite or not path.exists():
        return path
    n = 1
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


class AtomicFile:
    """A temp file beside `target` that becomes `target` on commit() and vanishes on discard()."""

    def __init__(self, target: Path):
        self.target = target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
        os.close(fd)
        self.path = Path(name)

    def commit(self) -> Path:
        os.replace(self.path, self.target)
        return self.target

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

    def finish(self, commit: bool) -> Path | None:
        """Commit (returning the target) or discard (returning None)."""
        if commit:
            return self.commit()
        self.discard()
        return None


def read_frame(path: Path | str, index: int = 0) -> Frame:
    """An image file as a Frame; an unreadable file is a PiposerError naming it."""
    image = cv2.imread(str(path))
    if image is None:
        raise PiposerError(f"cannot read image {path}")
    return Frame(image, index, time.monotonic(), time.time())


def write_bytes(target: Path, data: bytes) -> Path:
    f = AtomicFile(target)
    try:
        f.path.write_bytes(data)
    except BaseException:
        f.discard()
        raise
    return f.commit()


def write_image(target: Path, image: np.ndarray) -> Path:
    ok, buf = cv2.imencode(target.suffix or ".jpg", image)
    if not ok:
        raise PiposerError(f"cannot encode image as {target.suffix}: {target}")
    return write_bytes(target, buf.tobytes())


def image_document(source: str, frame: Frame, poses: list[Pose], model: str) -> dict:
    """The JSON document written for one image."""
    return {"image": source, "width": frame.width, "height": frame.height, "model": model,
            "poses": [pose_to_dict(p) for p in poses]}


def table_header(layout: Layout) -> list[str]:
    """time, frame, person, pose score, then x/y/score per keypoint (MGT-python's pose-data shape)."""
    cols = ["time", "frame", "person", "score"]
    for name in layout.keypoints:
        cols += [f"{name}_x", f"{name}_y", f"{name}_score"]
    return cols


class PoseDataWriter:
    """Per-frame pose data as CSV/TSV (one row per person and frame) or JSON Lines (one object per frame).

    A keypoint that is not detected has empty x/y cells in CSV/TSV and `detected: false` in JSONL.
    """

    def __init__(self, target: Path, layout: Layout, fps: float):
        if target.suffix not in DATA_FORMATS:
            raise PiposerError(f"--data {target}: unknown format '{target.suffix}' (use {', '.join(DATA_FORMATS)})")
        self.file = AtomicFile(target)
        self.fps = fps or 30.0
        self.layout = layout
        self._fh = open(self.file.path, "w", newline="")
        self._jsonl = target.suffix == ".jsonl"
        if not self._jsonl:
            self._csv = csv.writer(self._fh, delimiter="\t" if target.suffix == ".tsv" else ",")
            self._csv.writerow(table_header(layout))

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        t = round(frame.index / self.fps, 4)
        if self._jsonl:
            self._fh.write(json.dumps({"time": t, "frame": frame.index, "poses": [pose_to_dict(p) for p in poses]}) + "\n")
            return
        for i, pose in enumerate(poses):
            row: list = [t, frame.index, pose.track_id if pose.track_id is not None else i, round(pose.score, 4)]
            for k in pose.keypoints:
                row += [round(k.x, 1), round(k.y, 1), round(k.score, 4)] if k.detected else ["", "", round(k.score, 4)]
            self._csv.writerow(row)

    def close(self, commit: bool = True) -> Path | None:
        self._fh.close()
        return self.file.finish(commit)


class VideoWriter:
    """An annotated MP4, written under a temp name and renamed when complete."""

    def __init__(self, target: Path, fps: float, size: tuple[int, int]):
        self.file = AtomicFile(target)
        self._writer = cv2.VideoWriter(str(self.file.path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30.0, size)
        if not self._writer.isOpened():
            self.file.discard()
            raise PiposerError(f"cannot write video {target}")

    def write(self, image: np.ndarray) -> None:
        self._writer.write(image)

    def close(self, commit: bool = True) -> Path | None:
        self._writer.release()
        return self.file.finish(commit)
