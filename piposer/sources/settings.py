"""[source] settings: what to capture from; light to import (the config loader needs it)."""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


@dataclass
class SourceSettings:
    """[source]: what to capture from and how to set the camera up.

    `source` is "auto" (picamera2, then /dev/video0), "picamera2", a /dev/videoN path or an int
    index, a stream URL (rtsp://...), a video file, an image folder or a glob. `width`/`height`/`fps`
    configure cameras; `lores_width`/`lores_height` (picamera2 only) make inference run on the ISP's
    small second stream instead of downscaling the main one. `loop` replays files forever. A live
    source that sends no frame for `stall_timeout` seconds (a frozen stream that keeps its connection)
    counts as lost: reported, counted as an outage, and reopened.
    """

    source: str | int = "auto"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    lores_width: int = 0
    lores_height: int = 0
    loop: bool = False
    reopen_min: float = 0.5
    reopen_max: float = 10.0  # well below the service's WatchdogSec (30 s): several attempts before a restart
    stall_timeout: float = 5.0

    def __post_init__(self):
        from ..checks import check_range

        if isinstance(self.source, int) and self.source < 0:
            raise ValueError(f"source.source must be a camera index >= 0, not {self.source}")
        if isinstance(self.source, str) and not self.source.strip():
            raise ValueError("source.source must not be empty (allowed: auto, picamera2, /dev/videoN, index, URL, file, folder, glob)")
        for key in ("width", "height"):
            check_range(f"source.{key}", getattr(self, key), 16, 8192)
        check_range("source.fps", self.fps, 0, 240, lo_open=True)
        for key in ("lores_width", "lores_height"):
            check_range(f"source.{key}", getattr(self, key), 0, 8192)
        if (self.lores_width > 0) != (self.lores_height > 0):
            raise ValueError("source.lores_width and source.lores_height must be set together (0 = no lores stream)")
        if self.lores_width > self.width or self.lores_height > self.height:
            raise ValueError(
                f"source.lores_width/lores_height ({self.lores_width}x{self.lores_height}) must not exceed "
                f"source.width/height ({self.width}x{self.height})"
            )
        check_range("source.reopen_max", self.reopen_max, 0, 3600, lo_open=True)
        check_range("source.stall_timeout", self.stall_timeout, 0.5, 600)
        if not 0 < self.reopen_min <= self.reopen_max:
            raise ValueError(f"source.reopen_min must be > 0 and <= source.reopen_max, not {self.reopen_min}")

    @property
    def lores(self) -> tuple[int, int] | None:
        return (self.lores_width, self.lores_height) if self.lores_width else None


