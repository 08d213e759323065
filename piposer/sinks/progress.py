"""A one-line progress bar on stderr for long jobs (only when stderr is a terminal), as a sink."""

from __future__ import annotations

import sys
import time

from . import Sink


class Progress(Sink):
    name = "progress"

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.started, self.stream = total, 0, time.monotonic(), stream

    def publish(self, frame, poses) -> None:
        self.done += 1
        if not self.stream.isatty():
            return
        fps = self.done / max(time.monotonic() - self.started, 1e-9)
        if self.total > 0:
            filled = int(30 * self.done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            eta = (self.total - self.done) / fps if fps else 0
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} frames  {fps:5.1f} fps  eta {eta:4.0f} s ")
        else:
            self.stream.write(f"\r{self.done} frames  {fps:5.1f} fps ")
        self.stream.flush()

    def close(self) -> None:
        if self.done and self.stream.isatty():
            self.stream.write("\n")
