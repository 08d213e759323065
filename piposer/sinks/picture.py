"""Dashboard pictures: a frame with its poses drawn, scaled down and JPEG-encoded on a thread of its own.

The frame loop only copies the image into a one-slot mailbox (a newer picture replaces one not yet
encoded); drawing, scaling and encoding happen on the encoder thread, so a picture never delays a frame.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import cv2
import numpy as np

from ..types import Pose
from .render import draw
from .snapshot import OVERLAY

log = logging.getLogger("piposer.picture")
QUALITY = 80


def encode_picture(image: np.ndarray, poses: list[Pose], width: int, mirrored: bool = False) -> bytes:
    """The image with its poses drawn, scaled to at most `width` pixels wide, as JPEG bytes."""
    out = draw(image, poses, OVERLAY, mirrored=mirrored)
    if out.shape[1] > width:
        height = round(out.shape[0] * width / out.shape[1])
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


class PictureEncoder:
    """Encodes the newest submitted picture and hands the JPEG to `deliver` (on the encoder thread)."""

    def __init__(self, deliver: Callable[[bytes], None], width: int, mirrored: bool = False):
        self.deliver = deliver
        self.width = width
        self.mirrored = mirrored
        self.encoded = 0
        self._slot: tuple[np.ndarray, list[Pose]] | None = None
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="piposer-picture", daemon=True)
        self._thread.start()

    def submit(self, image: np.ndarray, poses: list[Pose]) -> None:
        """Queue a copy of `image` with its poses (replacing a picture still waiting)."""
        with self._ready:
            self._slot = (image.copy(), list(poses))
            self._ready.notify()

    def close(self, timeout: float = 1.0) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._slot is None and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                (image, poses), self._slot = self._slot, None
            try:
                self.deliver(encode_picture(image, poses, self.width, self.mirrored))
                self.encoded += 1
            except Exception as exc:  # noqa: BLE001 - a bad picture must not end the thread
                log.warning("could not publish a picture: %s: %s", type(exc).__name__, exc)
