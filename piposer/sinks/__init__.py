"""Sinks take each frame's poses and do something with them (MQTT, GPIO, files); they never call back in."""

from __future__ import annotations

from typing import Protocol

from ..types import Frame, Pose


class Sink(Protocol):
    def publish(self, frame: Frame, poses: list[Pose]) -> None: ...

    def close(self) -> None: ...
