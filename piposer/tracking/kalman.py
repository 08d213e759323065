"""A constant-velocity Kalman filter over many boxes at once: where each tracked person should be now.

Each box is (cx, cy, w, h), and each of those four values moves on at a velocity of its own: four
position-velocity filters per box. Their noises all scale with the box's size (as in SORT/DeepSORT, so
a near person and a far one are both followed), so the four start, grow and are corrected alike and
share one 2x2 covariance (`pp`, `pv`, `vv`, a row of `cov`): the whole filter is closed-form array
arithmetic, with no matrix inverse. Time steps are real seconds, so a slow or uneven frame rate only
widens the prediction.
"""

from __future__ import annotations

import numpy as np

# Standard deviations as fractions of the box's size: of a measured box (keypoint boxes jitter as limbs
# come and go), of the position change per second, of the velocity change per second, and of the
# velocity of a newly seen box.
MEASUREMENT_STD = 0.1
POSITION_STD = 0.2
VELOCITY_STD = 0.5
INITIAL_VELOCITY_STD = 1.0
_START = np.array([MEASUREMENT_STD ** 2, 0.0, INITIAL_VELOCITY_STD ** 2])  # covariance of a new box, per size^2
_GROWTH = np.array([POSITION_STD ** 2, 0.0, VELOCITY_STD ** 2])  # covariance growth per second, per size^2


def _size2(boxes: np.ndarray) -> np.ndarray:
    """Each (cx, cy, w, h) box's size squared, (N,): the mean of its sides, at least one pixel."""
    size = np.maximum((boxes[:, 2] + boxes[:, 3]) * 0.5, 1.0)
    return size * size


class BoxKalman:
    """Positions and velocities (N, 4) of N boxes given as (cx, cy, w, h) rows, and their shared
    covariances `cov` (N, 3): position variance, position-velocity covariance, velocity variance."""

    def __init__(self):
        self.boxes = np.zeros((0, 4))  # filtered (cx, cy, w, h)
        self.velocity = np.zeros((0, 4))  # per second
        self.cov = np.zeros((0, 3))

    def __len__(self) -> int:
        return len(self.boxes)

    def add(self, boxes: np.ndarray) -> None:
        """Start following (M, 4) new boxes, at rest and with a wide velocity uncertainty."""
        start = _size2(boxes)[:, None] * _START
        self.boxes = np.vstack([self.boxes, boxes])
        self.velocity = np.vstack([self.velocity, np.zeros_like(boxes)])
        self.cov = np.vstack([self.cov, start])

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the boxes at `rows` (indices or a mask), in that order."""
        self.boxes, self.velocity, self.cov = self.boxes[rows], self.velocity[rows], self.cov[rows]

    def predict(self, dt: float) -> None:
        """Move every box `dt` seconds on at its velocity and grow its uncertainty accordingly."""
        if dt <= 0 or not len(self):
            return
        noise = (_size2(self.boxes) * dt)[:, None] * _GROWTH  # grows with the size squared
        self.boxes += dt * self.velocity
        pp, pv, vv = self.cov.T  # views: (pp, pv, vv) <- F P F^T for F = [[1, dt], [0, 1]], in place
        pp += (2 * dt) * pv + (dt * dt) * vv
        pv += dt * vv
        self.cov += noise

    def update(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        """Correct the boxes at `rows` with their measured (M, 4) `boxes`."""
        cov = self.cov[rows]
        pp, pv, vv = cov.T
        total = pp + MEASUREMENT_STD ** 2 * _size2(boxes)
        gain_p, gain_v = pp / total, pv / total
        innovation = boxes - self.boxes[rows]
        self.boxes[rows] += gain_p[:, None] * innovation
        self.velocity[rows] += gain_v[:, None] * innovation
        vv -= gain_v * pv  # in the order that reads pp and pv before they change
        cov[:, :2] *= (1 - gain_p)[:, None]
        self.cov[rows] = cov
