"""Frame sources: a device wrapped so the loop always gets the right frame.

Live devices get a capture thread that keeps only the newest frame (inference never works on a stale
one) and reopens a lost camera with backoff; files and folders are read frame by frame, none skipped.
Image files are read here too, for every command that reads one.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PiposerError, SourceError
from ..types import Frame
from .devices import Device, OpenCVDevice, device_for, read_image
from .settings import SourceSettings


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

    def _lost_locked(self, reason: str, since: float | None = None) -> None:
        """Record an outage (begun `since`, default now) once, whichever of the capture thread and the
        stall check sees it first."""
        if self.connected:
            self.connected = False
            self.outage_started = time.monotonic() if since is None else since
            self._events.append(SourceEvent("source_lost", {"source": self.description, "reason": reason}))

    def _restored(self) -> None:
        with self._lock:
            if self.connected:
                return
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
    (reopen_min doubling up to reopen_max), recording the outage. A device that stays connected but
    sends nothing for `stall_timeout` seconds is a stall: `read` reports it as an outage (and counts it)
    without waiting for the device to give up.
    """

    def __init__(self, device: Device, reopen_min: float = 0.5, reopen_max: float = 10.0,
                 stall_timeout: float = 5.0):
        super().__init__(device)
        self.reopen_min = reopen_min
        self.reopen_max = reopen_max
        self.stall_timeout = stall_timeout
        self.stalls = 0
        self.dropped = 0
        self._newest: np.ndarray | None = None
        self._last_frame_at = 0.0
        self._captured_at = 0.0
        self._wall = 0.0
        self._fresh = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.close_timeout = 5.0

    def start(self) -> None:
        super().start()
        self._last_frame_at = time.monotonic()
        self._thread = threading.Thread(target=self._capture, name="piposer-capture", daemon=True)
        self._thread.start()

    def read(self, timeout: float = 1.0) -> Frame | None:
        with self._fresh:
            if self._newest is None:
                self._fresh.wait(timeout)
            if self._newest is None:
                self._check_stall()
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

    def _check_stall(self) -> bool:
        """Called with the lock held: report a connected device silent for stall_timeout as a stalled outage
        (from `read`, or from the capture thread when the device's own timeout ends the read)."""
        silent = time.monotonic() - self._last_frame_at
        if self.connected and silent > self.stall_timeout:
            self.stalls += 1
            self._lost_locked(f"stalled: no frame for {silent:.1f} s", since=self._last_frame_at)
            return True
        return False

    def stats(self) -> dict:
        return {**super().stats(), "dropped": self.dropped, "stalls": self.stalls}

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
                with self._lock:
                    if not self._check_stall():
                        self._lost_locked(reason)
                self._safe_close()
                is_open = False
                continue
            captured = self._last_frame_at = time.monotonic()  # before restoring: no stall seen in between
            if not self.connected:
                self._restored()
            delay = self.reopen_min
            with self._fresh:
                if self._newest is not None:
                    self.dropped += 1
                self._newest, self._captured_at, self._wall = image, captured, time.time()
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


def open_source(settings: SourceSettings | str | int | os.PathLike, log=print) -> FrameSource:
    """Pick the device `settings.source` names, open it, and wrap it in a started FrameSource. Library
    callers may pass just what `[source] source` would say: a file, folder, URL, /dev/videoN or index."""
    if not isinstance(settings, SourceSettings):
        settings = SourceSettings(source=settings if isinstance(settings, int) else str(settings))
    device = device_for(settings, log)
    if device.live:
        source: FrameSource = LiveFeed(device, settings.reopen_min, settings.reopen_max, settings.stall_timeout)
    else:
        source = Playback(device)
    source.start()
    return source
