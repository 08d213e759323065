"""The console's live view: the newest frame with poses, track ids, boxes and zones drawn, as JPEG.

The frame loop only leaves its newest frame here (`offer`, one assignment). While at least one browser
watches, one encoder task on the server's event loop draws and encodes it in a worker thread, at most
`live_fps` times a second; every viewer gets the newest JPEG and a slow one skips frames.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import cv2

from ..sinks.render import draw, draw_zones
from ..types import Frame, Pose

OVERLAY = frozenset({"links", "keypoints", "box"})


@dataclass
class Scene:
    """What one live image shows: a frame, its tracked poses, the rule zones and the active rules."""

    frame: Frame
    poses: list[Pose]
    zones: list  # (rule name, normalized outline) pairs
    active: set[str]


def render(scene: Scene, *, mirrored: bool = False, width: int | None = None, quality: int = 80) -> bytes:
    """The scene drawn and JPEG-encoded, scaled down to at most `width` pixels wide."""
    image = draw_zones(draw(scene.frame.image, scene.poses, OVERLAY, mirrored=mirrored), scene.zones, scene.active)
    if width and image.shape[1] > width:
        image = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpeg.tobytes() if ok else b""


class LiveView:
    """The newest scene and the JPEG made from it, shared by every viewer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fps: float, width: int, mirrored: bool = False):
        self.loop, self.period, self.width, self.mirrored = loop, 1.0 / fps, width, mirrored
        self.viewers = 0
        self.encoded = 0  # JPEGs made: tells a test (and the bench) that nothing is encoded unwatched
        self.jpeg: bytes | None = None
        self._scene: Scene | None = None
        self._fresh = threading.Event()  # a scene newer than the last JPEG was offered
        self._changed = asyncio.Condition()
        self._encoder: asyncio.Task | None = None

    @property
    def scene(self) -> Scene | None:
        return self._scene

    def offer(self, scene: Scene) -> None:
        """From the frame loop: the newest scene (the previous one, if not encoded yet, is dropped)."""
        self._scene = scene
        self._fresh.set()

    async def frames(self):
        """Each new JPEG while the caller watches (an async generator; closing it stops watching)."""
        self.viewers += 1
        if self._encoder is None or self._encoder.done():
            self._encoder = asyncio.ensure_future(self._encode())
        seen = None
        try:
            while True:
                async with self._changed:
                    await self._changed.wait_for(lambda: self.jpeg is not seen)
                seen = self.jpeg
                yield seen
        finally:
            self.viewers -= 1

    async def _encode(self) -> None:
        while self.viewers > 0:
            started = time.monotonic()
            if self._fresh.is_set() and self._scene is not None:
                self._fresh.clear()
                jpeg = await self.loop.run_in_executor(None, lambda s=self._scene: render(
                    s, mirrored=self.mirrored, width=self.width))
                self.encoded += 1
                async with self._changed:
                    self.jpeg = jpeg
                    self._changed.notify_all()
            await asyncio.sleep(max(0.01, self.period - (time.monotonic() - started)))
