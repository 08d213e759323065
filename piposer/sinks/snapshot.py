"""Snapshots on request: the next frame with its poses drawn (JPEG) and the poses (JSON), in one folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ..commands import Command, Snapshot
from ..errors import PiposerError
from ..events import EventKind
from ..types import Frame, Pose, pose_to_dict
from . import Sink
from .files import write_bytes, write_image
from .render import draw

OVERLAY = frozenset({"links", "keypoints", "box"})


class SnapshotSink(Sink):
    """Answers `snapshot` commands from the next frame (even while paused), once for all pending requests;
    replies go out on the bus as `snapshot` (with the path) or `command_failed`."""

    name = "SnapshotSink"

    def __init__(self, folder: Path, *, emit: Callable[..., object], mirrored: bool = False):
        self.folder = folder
        self.emit = emit
        self.mirrored = mirrored
        self._requests: list[Command] = []

    @property
    def wants_frame(self) -> bool:
        return bool(self._requests)

    def on_command(self, command) -> None:
        if isinstance(command, Snapshot):
            self._requests.append(command)

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        if not self._requests:
            return
        requests, self._requests = self._requests, []
        stem = self.folder / time.strftime("snapshot-%Y%m%d-%H%M%S", time.localtime(frame.wall_time or time.time()))
        stem = stem.with_name(f"{stem.name}-{frame.index}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_image(stem.with_suffix(".jpg"), draw(frame.image, poses, OVERLAY, mirrored=self.mirrored))
            write_bytes(stem.with_suffix(".json"), json.dumps([pose_to_dict(p) for p in poses]).encode())
        except (OSError, PiposerError) as exc:
            for cmd in requests:
                self.emit(EventKind.COMMAND_FAILED, command=cmd.name, id=cmd.request_id,
                          error=f"snapshot to {self.folder}: {exc}")
            return
        for cmd in requests:
            self.emit(EventKind.SNAPSHOT, command=cmd.name, id=cmd.request_id, path=str(stem.with_suffix(".jpg")),
                      people=len(poses))
