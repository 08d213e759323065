"""Steady keypoints: a One-Euro filter per tracked person, with MediaPipe's pose landmark settings.

Speeds are measured in body sizes per second (the track's filtered box), so a near person and a far
one are smoothed alike. A keypoint the model did not detect passes through unchanged and restarts its
filter, so it never drags a stale position along when it comes back. The filter states are rows of
arrays aligned with the tracker's tracks (as the Kalman boxes are), and all of a frame's people are
filtered in one array step, each at its own frame interval.
"""

from __future__ import annotations

import numpy as np

from ..smoothing import LANDMARK_FILTER, one_euro_step


class KeypointSmoother:
    """One-Euro states of N tracks of K keypoints, (N, 3, K, 2): the last raw keypoints, their smoothed values
    and smoothed speeds; and when each row was last smoothed (-inf for never, so its first keypoints pass
    through)."""

    def __init__(self, keypoints: int = 0):
        self.state = np.zeros((0, 3, keypoints, 2))
        self.time = np.zeros(0)

    def add(self, count: int) -> None:
        """Start `count` new rows, never smoothed."""
        self.state = np.concatenate([self.state, np.zeros((count, *self.state.shape[1:]))])
        self.time = np.concatenate([self.time, np.full(count, -np.inf)])

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows at `rows` (indices or a mask), in that order."""
        self.state, self.time = self.state[rows], self.time[rows]

    def smooth(self, rows: np.ndarray, xy: np.ndarray, seen: np.ndarray, sizes: np.ndarray,
               timestamp: float) -> np.ndarray:
        """The smoothed (N, K, 2) keypoints of the tracks at `rows`, seen at `xy` (detected where `seen`)
        at `timestamp`; `sizes` (N,) are the bodies' sizes in pixels.

        A row smoothed before at a time not earlier than `timestamp` passes through: its frequency is 0.
        """
        dt = timestamp - self.time[rows]
        frequency = (1.0 / np.where(dt > 0, dt, np.inf))[:, None, None]
        scale = (1.0 / np.maximum(sizes, 1.0))[:, None, None]
        state = self.state[rows]
        value, speed = one_euro_step(LANDMARK_FILTER, xy, state[:, 0], state[:, 1], state[:, 2], frequency, scale)
        if not seen.all():
            missing = ~seen[..., None]
            value, speed = np.where(missing, xy, value), np.where(missing, 0.0, speed)
        state[:, 0], state[:, 1], state[:, 2] = xy, value, speed
        self.state[rows], self.time[rows] = state, timestamp
        return value
