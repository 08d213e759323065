"""A constant-velocity Kalman filter over many boxes at once: where each tracked person should be now.

Each box is (cx, cy, w, h), and each of those four values moves on at a velocity of its own: four
independent position-velocity filters per box, so every covariance is a 2x2 block (`pp`, `pv`, `vv`)
and the whole filter is closed-form array arithmetic, with no matrix inverse. Noise scales with the
box's size, as in SORT/DeepSORT, so a near person and a far one are both followed; time steps are real
seconds, so a slow or uneven frame rate only widens the prediction.
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


def _size(boxes: np.ndarray) -> np.ndarray:
    """Each (cx, cy, w, h) box's size as an (N, 1) column: the mean of its sides, at least one pixel."""
    return np.maximum((boxes[:, 2:3] + boxes[:, 3:4]) / 2.0, 1.0)


class BoxKalman:
    """Positions and velocities (N, 4) of N boxes given as (cx, cy, w, h) rows, with their covariances."""

    def __init__(self):
        self.boxes = np.zeros((0, 4))  # filtered (cx, cy, w, h)
        self.velocity = np.zeros((0, 4))  # per second
        self.pp, self.pv, self.vv = np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4))

    def __len__(self) -> int:
        return len(self.boxes)

    def add(self, boxes: np.ndarray) -> None:
        """Start following (M, 4) new boxes, at rest and with a wide velocity uncertainty."""
        size = _size(boxes) * np.ones(4)
        self.boxes = np.vstack([self.boxes, boxes])
        self.velocity = np.vstack([self.velocity, np.zeros_like(boxes)])
        self.pp = np.vstack([self.pp, (MEASUREMENT_STD * size) ** 2])
        self.pv = np.vstack([self.pv, np.zeros_like(boxes)])
        self.vv = np.vstack([self.vv, (INITIAL_VELOCITY_STD * size) ** 2])

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the boxes at `rows` (indices or a mask), in that order."""
        for name in ("boxes", "velocity", "pp", "pv", "vv"):
            setattr(self, name, getattr(self, name)[rows])

    def predict(self, dt: float) -> None:
        """Move every box `dt` seconds on at its velocity and grow its uncertainty accordingly."""
        if dt <= 0 or not len(self):
            return
        noise = _size(self.boxes) ** 2 * dt
        self.boxes += dt * self.velocity
        self.pp += (2 * dt) * self.pv + (dt * dt) * self.vv + POSITION_STD ** 2 * noise
        self.pv += dt * self.vv
        self.vv += VELOCITY_STD ** 2 * noise

    def update(self, rows: np.ndarray, boxes: np.ndarray) -> None:
        """Correct the boxes at `rows` with their measured (M, 4) `boxes`."""
        pp, pv, vv = self.pp[rows], self.pv[rows], self.vv[rows]
        s = pp + (MEASUREMENT_STD * _size(boxes)) ** 2
        gain_p, gain_v = pp / s, pv / s
        innovation = boxes - self.boxes[rows]
        self.boxes[rows] += gain_p * innovation
        self.velocity[rows] += gain_v * innovation
        self.pp[rows], self.pv[rows], self.vv[rows] = (1 - gain_p) * pp, (1 - gain_p) * pv, vv - gain_v * pv
