"""A stand-in for the `picamera2` module, the hardware edge only: it serves real video frames the way
picamera2 lays them out ("RGB888" is B,G,R in memory; "YUV420" lores is I420, (h*3/2, w)), paced like
a camera, and can simulate an unplugged camera. Install it with `install(monkeypatch, frames)`.
"""

from __future__ import annotations

import sys
import threading
import time
import types

import cv2
import numpy as np


class Picamera2:
    """Mimics the parts of picamera2.Picamera2 the sources use; class attributes are the test's knobs."""

    cameras: list[dict] = [{"Model": "imx708", "Num": 0}]
    frames: list[np.ndarray] = []
    interval = 0.0            # seconds capture_array blocks for, like a camera's frame period
    fail_after: int | None = None  # captures before the camera "disappears" (capture_array raises)
    failed_opens = 0          # how many of the next constructions fail (camera still gone)
    stall = threading.Event() # while set, capture_array blocks (a hung camera)
    instances: list[Picamera2] = []

    @classmethod
    def global_camera_info(cls) -> list[dict]:
        return list(cls.cameras)

    def __init__(self, camera_num: int = 0):
        if not self.cameras:
            raise IndexError("list index out of range")
        cls = type(self)
        if cls.failed_opens > 0:
            cls.failed_opens -= 1
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_num = camera_num
        self.config: dict | None = None
        self.started = self.closed = False
        self.captures = 0
        self.gone = False
        self.served: list[np.ndarray] = []
        cls.instances.append(self)

    def create_video_configuration(self, main=None, lores=None, controls=None, **options) -> dict:
        return {"main": dict(main or {}), "lores": dict(lores) if lores else None, "controls": dict(controls or {}),
                **options}

    def align_configuration(self, config: dict) -> None:
        pass

    def configure(self, config: dict) -> None:
        self.config = config

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def capture_array(self, name: str = "main") -> np.ndarray:
        if not self.started:
            raise RuntimeError("camera not started")
        cls = type(self)
        while cls.stall.is_set():
            time.sleep(0.01)
        time.sleep(self.interval)
        if cls.fail_after is not None and self.captures >= cls.fail_after:
            cls.fail_after, self.gone = None, True  # this camera is gone; the next one opened works
        if self.gone:
            raise RuntimeError("Device or resource busy: camera disconnected")
        bgr = self.frames[self.captures % len(self.frames)]
        self.captures += 1
        stream = self.config[name]
        image = cv2.resize(bgr, tuple(stream["size"]), interpolation=cv2.INTER_AREA)
        if stream["format"] == "YUV420":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        else:
            assert stream["format"] == "RGB888", stream  # B,G,R in memory, i.e. OpenCV's BGR
        self.served.append(image)
        return image


def install(monkeypatch, frames: list[np.ndarray], **knobs) -> type[Picamera2]:
    """Put a fresh fake `picamera2` module in sys.modules serving `frames`; returns its Picamera2 class."""
    cls = type("Picamera2", (Picamera2,), {
        "frames": frames, "instances": [], "stall": threading.Event(), "cameras": list(Picamera2.cameras), **knobs,
    })
    module = types.ModuleType("picamera2")
    module.Picamera2 = cls
    monkeypatch.setitem(sys.modules, "picamera2", module)
    return cls
