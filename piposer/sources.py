"""Where frames come from: the Pi camera (picamera2), USB cameras and streams (OpenCV), video files, image folders.

A `Device` only opens, reads BGR images and closes. `open_source` wraps it in a `FrameSource`:
live devices get a capture thread that keeps only the newest frame (inference never works on a stale
one) and reopens a lost camera with backoff; files and folders are read frame by frame, none skipped.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .checks import mask_url
from .errors import PiposerError, SourceError
from .types import Frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "udp://", "tcp://")


@dataclass
class SourceSettings:
    """[source]: what to capture from and how to set the camera up.

    `source` is "auto" (picamera2, then /dev/video0), "picamera2", a /dev/videoN path or an int
    index, a stream URL (rtsp://...), a video file, an image folder or a glob. `width`/`height`/`fps`
    configure cameras; `lores_width`/`lores_height` (picamera2 only) make inference run on the ISP's
    small second stream instead of downscaling the main one. `loop` replays files forever.
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

    def __post_init__(self):
        from .checks import check_range

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
        if not 0 < self.reopen_min <= self.reopen_max:
            raise ValueError(f"source.reopen_min must be > 0 and <= source.reopen_max, not {self.reopen_min}")

    @property
    def lores(self) -> tuple[int, int] | None:
        return (self.lores_width, self.lores_height) if self.lores_width else None


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
        capture = cv2.VideoCapture(self.target, cv2.CAP_V4L2) if is_camera else cv2.VideoCapture(self.target)
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
    """Still images from a folder or a glob, in name order, as if they were a video."""

    live = False
    fps = 1.0  # stills are unrelated moments: one second apart, as far as tracking is concerned

    def __init__(self, paths: list[Path], description: str, loop: bool = False):
        self.paths = paths
        self.description = f"{description} ({len(paths)} images)"
        self.loop = loop
        self._next = 0

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.paths):
            if not self.loop:
                return None
            self._next = 0
        path = self.paths[self._next]
        self._next += 1
        return read_image(path)

    def close(self) -> None:
        pass


@dataclass
class SourceEvent:
    """Something operators should see: the camera was lost ("source_lost") or is back ("source_restored")."""

    kind: str
    fields: dict


class FrameSource:
    """Frames from a device, numbered and timestamped at capture, with outage tracking for stats and events.

    `read(timeout)` returns the next Frame, or None when none arrived in time (a live source that is
    down, or just slow); `finished` turns True at the end of a file.
    """

    def __init__(self, device: Device):
        self.device = device
        self.description = device.description
        self.live = device.live
        self.finished = False
        self.frames = 0
        self.reopens = 0
        self.connected = False
        self.outage_started: float | None = None
        self.outage_seconds = 0.0
        self._events: deque[SourceEvent] = deque()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the device once, synchronously, so a missing camera is an error at startup."""
        try:
            self.device.open()
        except Exception as exc:  # picamera2/OpenCV raise many kinds; all mean "cannot open"
            raise PiposerError(f"source: cannot open {self.description}: {exc}") from None
        self.connected = True

    def read(self, timeout: float = 1.0) -> Frame | None:
        raise NotImplementedError  # Playback and LiveFeed read in different threads

    def media_time(self, frame: Frame) -> float:
        """The frame's time in the scene (seconds), which tracking ages go by: capture time for live sources."""
        return frame.timestamp

    def close(self) -> None:
        self.device.close()

    def events(self) -> list[SourceEvent]:
        """Outage events since the last call (thread-safe: the capture thread adds them)."""
        if not self._events:  # the usual case, checked every loop pass: no lock, no new deque
            return []
        with self._lock:
            events, self._events = list(self._events), deque()
        return events

    def stats(self) -> dict:
        now = time.monotonic()
        with self._lock:
            current = now - self.outage_started if self.outage_started is not None else 0.0
            return {
                "source": self.description,
                "connected": self.connected,
                "frames": self.frames,
                "reopens": self.reopens,
                "outage_s": round(current, 2),
                "outage_total_s": round(self.outage_seconds + current, 2),
            }

    def _frame(self, image: np.ndarray, captured: float, wall: float) -> Frame:
        frame = Frame(image=image, index=self.frames, timestamp=captured, wall_time=wall)
        self.frames += 1
        return frame

    def _lost(self, reason: str) -> None:
        with self._lock:
            self.connected = False
            self.outage_started = time.monotonic()
            self._events.append(SourceEvent("source_lost", {"source": self.description, "reason": reason}))

    def _restored(self) -> None:
        with self._lock:
            down = time.monotonic() - self.outage_started
            self.outage_seconds += down
            self.outage_started = None
            self.connected = True
            self.reopens += 1
            self._events.append(
                SourceEvent("source_restored", {"source": self.description, "outage_s": round(down, 2)})
            )


class Playback(FrameSource):
    """A file, folder or glob read in the caller's thread: every frame is processed, in order.

    Media time is the frame's position in the file, so tracking behaves the same however slowly it runs.
    """

    def media_time(self, frame: Frame) -> float:
        return frame.index / self.device.fps

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self.finished:
            return None
        image = self.device.read()
        if image is None:
            self.finished = True
            return None
        return self._frame(image, time.monotonic(), time.time())


class LiveFeed(FrameSource):
    """A camera or stream read by a capture thread that keeps only the newest frame.

    When the device fails, the thread closes it and reopens it with exponential backoff
    (reopen_min doubling up to reopen_max), recording the outage.
    """

    def __init__(self, device: Device, reopen_min: float = 0.5, reopen_max: float = 10.0):
        super().__init__(device)
        self.reopen_min = reopen_min
        self.reopen_max = reopen_max
        self.dropped = 0
        self._newest: np.ndarray | None = None
        self._captured_at = 0.0
        self._wall = 0.0
        self._fresh = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.close_timeout = 5.0

    def start(self) -> None:
        super().start()
        self._thread = threading.Thread(target=self._capture, name="piposer-capture", daemon=True)
        self._thread.start()

    def read(self, timeout: float = 1.0) -> Frame | None:
        with self._fresh:
            if self._newest is None:
                self._fresh.wait(timeout)
            if self._newest is None:
                return None
            image, captured, wall = self._newest, self._captured_at, self._wall
            self._newest = None
        return self._frame(image, captured, wall)

    def close(self) -> None:
        """Stop the capture thread, which closes the device as it ends. A thread still stuck in a device
        read after `close_timeout` (a stalled stream) is left to close it when the read returns: closing
        under a running read can crash the capture library."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.close_timeout)
        if self._thread is None or not self._thread.is_alive():
            self.device.close()

    def stats(self) -> dict:
        return {**super().stats(), "dropped": self.dropped}

    def _capture(self) -> None:
        try:
            self._capture_until_stopped()
        finally:
            self._safe_close()

    def _capture_until_stopped(self) -> None:
        delay, is_open = self.reopen_min, True
        while not self._stop.is_set():
            if not is_open:
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.reopen_max)
                is_open = self._try_open()
                continue
            try:
                image, reason = self.device.read(), "no frame from device"
            except Exception as exc:  # a yanked camera raises, a dead stream returns None
                image, reason = None, f"{type(exc).__name__}: {exc}"
            if self._stop.is_set():
                return
            if image is None:
                if self.connected:
                    self._lost(reason)
                self._safe_close()
                is_open = False
                continue
            if not self.connected:
                self._restored()
            delay = self.reopen_min
            with self._fresh:
                if self._newest is not None:
                    self.dropped += 1
                self._newest, self._captured_at, self._wall = image, time.monotonic(), time.time()
                self._fresh.notify()

    def _try_open(self) -> bool:
        try:
            self.device.open()
            return True
        except Exception:
            self._safe_close()
            return False

    def _safe_close(self) -> None:
        try:
            self.device.close()
        except Exception:
            pass


def read_image(path: Path | str) -> np.ndarray:
    """An image file as a BGR array; anything unreadable (missing, not an image, absurd size) is a SourceError."""
    try:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV accepts
        raise SourceError(f"cannot read image {path}: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise SourceError(f"cannot read image {path}")
    return image


def read_frame(path: Path | str, index: int = 0) -> Frame:
    """An image file as a Frame stamped now."""
    return Frame(read_image(path), index, time.monotonic(), time.time())


def open_video(path: Path | str) -> Playback:
    """A video file read frame by frame in the caller's thread (what `piposer video` runs over)."""
    if not Path(path).is_file():
        raise SourceError(f"cannot open video {path}")
    device = OpenCVDevice(str(path), SourceSettings(source=str(path)), live=False)
    source = Playback(device)
    try:
        source.start()
    except PiposerError:
        raise SourceError(f"cannot open video {path}") from None
    return source


def open_source(settings: SourceSettings, log=print) -> FrameSource:
    """Pick the device `settings.source` names, open it, and wrap it in a started FrameSource."""
    device = _device(settings, log)
    if device.live:
        source: FrameSource = LiveFeed(device, settings.reopen_min, settings.reopen_max)
    else:
        source = Playback(device)
    source.start()
    return source


def _device(settings: SourceSettings, log) -> Device:
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
            return ImageFiles([path], str(path), settings.loop)
        return OpenCVDevice(str(path), settings, live=False)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise PiposerError(f"source = {target!r}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageFiles(images, str(path), settings.loop)
    if glob.has_magic(target):
        images = sorted(Path(p) for p in glob.glob(os.path.expanduser(target)))
        if not images:
            raise PiposerError(f"source = {target!r}: glob matches no files")
        return ImageFiles(images, target, settings.loop)
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
