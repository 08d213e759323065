"""Devices: each only opens, reads BGR images and closes (picamera2, OpenCV cameras/streams/files, image lists).

`device_for(settings)` picks the one `[source] source` names.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..checks import mask_url
from ..errors import PiposerError, SourceError
from .settings import IMAGE_SUFFIXES, STREAM_PREFIXES, SourceSettings


class Device(Protocol):
    """One camera, stream, file or image list: open it, read BGR images until None, close it."""

    description: str
    live: bool
    fps: float  # frames per second of media time (files: the container's rate); unused for live devices

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class PiCamera2Device:
    """A Raspberry Pi camera through picamera2, main stream BGR, optionally reading the lores stream."""

    live = True

    def __init__(self, settings: SourceSettings, camera_num: int = 0):
        self.settings = settings
        self.fps = settings.fps
        self.camera_num = camera_num
        self.description = f"picamera2 camera {camera_num} ({settings.width}x{settings.height} @ {settings.fps:g} fps)"
        self._camera = None
        self._stream = "main"

    def open(self) -> None:
        from picamera2 import Picamera2

        s = self.settings
        camera = Picamera2(self.camera_num)
        try:
            # picamera2's "RGB888" is B,G,R in memory: exactly OpenCV's order, no conversion needed.
            streams = {"main": {"size": (s.width, s.height), "format": "RGB888"}}
            if s.lores:
                # Every Pi's ISP can give a YUV420 lores stream (RGB lores needs a Pi 5).
                streams["lores"] = {"size": s.lores, "format": "YUV420"}
            config = camera.create_video_configuration(
                **streams, controls={"FrameRate": float(s.fps)}, buffer_count=4, queue=False
            )
            camera.align_configuration(config)
            camera.configure(config)
            camera.start()
        except Exception:
            camera.close()
            raise
        self._camera = camera
        self._stream = "lores" if s.lores else "main"

    def read(self) -> np.ndarray | None:
        array = self._camera.capture_array(self._stream)
        if self._stream == "lores":
            return cv2.cvtColor(array, cv2.COLOR_YUV2BGR_I420)
        return array

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()


class OpenCVDevice:
    """A V4L2 camera, network stream or video file through cv2.VideoCapture."""

    def __init__(self, target: str | int, settings: SourceSettings, live: bool):
        self.target = target
        self.settings = settings
        self.live = live
        self.fps = settings.fps
        self.frame_count = 0  # frames in a file, as its header says (0 = unknown or live)
        self.description = f"camera {target}" if isinstance(target, int) else mask_url(str(target))  # no password in logs
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        s = self.settings
        is_camera = isinstance(self.target, int) or str(self.target).startswith("/dev/")
        if is_camera:
            capture = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        elif self.live:  # a stream: FFmpeg gives up on a silent server after stall_timeout instead of ~30 s
            timeout = int(s.stall_timeout * 1000)
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout,
                                                                     cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout])
        else:
            capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise OSError(f"cannot open {self.description}")
        if is_camera:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, s.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, s.height)
            capture.set(cv2.CAP_PROP_FPS, s.fps)
        if self.live:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            self.fps = capture.get(cv2.CAP_PROP_FPS) or s.fps
            self.frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
        self._capture = capture

    def read(self) -> np.ndarray | None:
        ok, image = self._capture.read()
        if not ok and not self.live and self.settings.loop and self._capture.get(cv2.CAP_PROP_POS_FRAMES) > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        return image if ok else None

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class ImageFiles:
    """Still images from a folder or a glob, in name order, as if they were a video.

    An unreadable image (truncated, not an image, absurd size) is skipped with a warning: one bad file
    in a folder of hundreds must not end the run. A pass in which no image could be read ends it.
    """

    live = False
    fps = 1.0  # stills are unrelated moments: one second apart, as far as tracking is concerned

    def __init__(self, paths: list[Path], description: str, loop: bool = False, log=print):
        self.paths = paths
        self.description = f"{description} ({len(paths)} images)"
        self.loop = loop
        self.log = log
        self.skipped = 0
        self._next = 0

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        for _ in range(len(self.paths)):  # at most one pass over the files in search of a readable one
            if self._next >= len(self.paths):
                if not self.loop:
                    return None
                self._next = 0
            path = self.paths[self._next]
            self._next += 1
            try:
                return read_image(path)
            except SourceError as exc:
                self.skipped += 1
                self.log(f"warning: {exc}: skipped")
        return None

    def close(self) -> None:
        pass


def device_for(settings: SourceSettings, log=print) -> Device:
    """The device `settings.source` names (not opened yet); a name that fits none is a PiposerError."""
    target = settings.source
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return OpenCVDevice(int(target), settings, live=True)
    if target == "auto":
        return _auto(settings, log)
    if target == "picamera2":
        problem = _picamera2_problem()
        if problem:
            raise PiposerError(f"source = 'picamera2': {problem}")
        return PiCamera2Device(settings)
    if target.startswith("/dev/"):
        if not os.path.exists(target):
            raise PiposerError(f"source = {target!r}: no such camera device")
        return OpenCVDevice(target, settings, live=True)
    if target.lower().startswith(STREAM_PREFIXES):
        return OpenCVDevice(target, settings, live=True)
    path = Path(target).expanduser()
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFiles([path], str(path), settings.loop, log)
        return OpenCVDevice(str(path), settings, live=False)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise PiposerError(f"source = {target!r}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageFiles(images, str(path), settings.loop, log)
    if glob.has_magic(target):
        images = sorted(Path(p) for p in glob.glob(os.path.expanduser(target)))
        if not images:
            raise PiposerError(f"source = {target!r}: glob matches no files")
        return ImageFiles(images, target, settings.loop, log)
    raise PiposerError(
        f"source = {mask_url(target)!r}: no such file (allowed: auto, picamera2, /dev/videoN, camera index, "
        "rtsp:// URL, video file, image folder, glob)"
    )


def _auto(settings: SourceSettings, log) -> Device:
    """picamera2 if it sees a camera, else /dev/video0; say what was tried and what was found."""
    problem = _picamera2_problem()
    if not problem:
        log("source auto: using the Pi camera via picamera2")
        return PiCamera2Device(settings)
    if os.path.exists("/dev/video0"):
        log(f"source auto: picamera2 unavailable ({problem}); using /dev/video0")
        return OpenCVDevice("/dev/video0", settings, live=True)
    raise PiposerError(
        f"source = 'auto' found no camera: picamera2: {problem}; /dev/video0: not present "
        "(set source.source to a device, URL or file)"
    )


def _picamera2_problem() -> str:
    """Why picamera2 can't be used here, or '' when it sees at least one camera."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return "python3-picamera2 is not installed (or the venv lacks --system-site-packages)"
    try:
        cameras = Picamera2.global_camera_info()
    except Exception as exc:
        return f"libcamera failed: {exc}"
    return "" if cameras else "libcamera sees no camera (check the ribbon cable and `rpicam-hello --list-cameras`)"


def read_image(path: Path | str) -> np.ndarray:
    """An image file as a BGR array; anything unreadable (missing, not an image, absurd size) is a SourceError."""
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV accepts
        detail = str(exc).strip().splitlines()[-1].split("error: ")[-1]  # without OpenCV's source file and line
        if "CV_IO_MAX_IMAGE_PIXELS" in detail:
            detail = "its header claims more pixels than OpenCV reads (2^30)"
        raise SourceError(f"cannot read image {path}: {detail}") from None
    if image is None:
        raise SourceError(f"cannot read image {path}")
    return image
