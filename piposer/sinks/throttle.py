"""Decides which frames' poses are worth sending: at most `max_rate_hz`, and optionally only on change."""

from __future__ import annotations

import numpy as np

from ..types import Frame, Pose


class Throttle:
    """Admits a frame when the rate limit allows it and (with `only_on_change`) something moved.

    "Changed" compares against the last admitted frame: a different number of people or track ids,
    a keypoint that became (un)detected, or any keypoint that moved more than `change_threshold`
    in normalized image units (0.01 = 1% of the image size). The rate limit keeps a schedule, so a
    30 fps camera limited to 10 Hz sends every third frame even when frame times jitter.
    """

    def __init__(self, max_rate_hz: float = 0.0, only_on_change: bool = False, change_threshold: float = 0.01):
        self.min_interval = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self.only_on_change = only_on_change
        self.change_threshold = change_threshold
        self._due = float("-inf")
        self._last: tuple | None = None

    def admit(self, now: float, frame: Frame, poses: list[Pose]) -> bool:
        if now < self._due - 1e-9:
            return False
        if self.only_on_change:
            signature = _signature(frame, poses)
            if self._last is not None and not self._changed(self._last, signature):
                return False
            self._last = signature
        # keep to the schedule despite frame jitter, but never catch up on a gap with a burst
        late = now - self._due >= self.min_interval
        self._due = (now if late else self._due) + self.min_interval
        return True

    def _changed(self, old: tuple, new: tuple) -> bool:
        (old_ids, old_xy, old_detected), (ids, xy, detected) = old, new
        if ids != old_ids or xy.shape != old_xy.shape:
            return True
        if not np.array_equal(detected, old_detected):
            return True
        return bool(xy.size) and float(np.abs(xy - old_xy).max()) > self.change_threshold


def _signature(frame: Frame, poses: list[Pose]) -> tuple:
    """Track ids, (P, K, 2) normalized positions and (P, K) detected flags of one frame's poses."""
    ids = tuple(pose.track_id for pose in poses)
    if not poses:
        return ids, np.zeros((0, 0, 2)), np.zeros((0, 0), dtype=bool)
    scale = np.array([frame.width, frame.height], dtype=np.float64)
    xy = np.stack([pose.xy() for pose in poses]) / scale
    detected = np.stack([pose.detected() for pose in poses])
    return ids, xy, detected
