"""Steady keypoints: a One-Euro filter per tracked person, with MediaPipe's pose landmark settings.

Speeds are measured in body sizes per second (the track's filtered box), so a near person and a far
one are smoothed alike. A keypoint the model did not detect passes through unchanged and restarts its
filter, so it never drags a stale position along when it comes back. All of a frame's people are
filtered in one array step (each at its own frame interval), not one filter call per person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..smoothing import LANDMARK_FILTER, one_euro_step


@dataclass
class History:
    """One track's filter state: last raw and smoothed keypoints (K, 2), smoothed speed, and when."""

    raw: np.ndarray
    value: np.ndarray
    speed: np.ndarray
    time: float


class KeypointSmoother:
    """Smooths each track's keypoints over time; `forget` drops the histories of tracks that have ended."""

    def __init__(self):
        self.histories: dict[int, History] = {}

    def smooth(self, ids: list[int], xy: np.ndarray, seen: np.ndarray, sizes: np.ndarray,
               timestamp: float) -> np.ndarray:
        """The smoothed (N, K, 2) keypoints of tracks `ids`, seen at `xy` (detected where `seen`) at
        `timestamp`; `sizes` (N,) are the bodies' sizes in pixels."""
        raw = np.asarray(xy, dtype=np.float64)
        value, speed = raw.copy(), np.zeros_like(raw)
        known = [i for i, t in enumerate(ids) if t in self.histories and self.histories[t].time < timestamp]
        if known:
            old = [self.histories[ids[i]] for i in known]
            frequency = 1.0 / (timestamp - np.array([h.time for h in old]))[:, None, None]
            scale = 1.0 / np.maximum(sizes[known], 1.0)[:, None, None]
            value[known], speed[known] = one_euro_step(
                LANDMARK_FILTER, raw[known], np.stack([h.raw for h in old]), np.stack([h.value for h in old]),
                np.stack([h.speed for h in old]), frequency, scale)
        missing = ~seen
        value[missing], speed[missing] = raw[missing], 0.0
        for i, track_id in enumerate(ids):
            self.histories[track_id] = History(raw[i], value[i], speed[i], timestamp)
        return value

    def forget(self, live: set[int]) -> None:
        for track_id in [t for t in self.histories if t not in live]:
            del self.histories[track_id]
