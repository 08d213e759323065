"""Temporal smoothing of landmark arrays: the One-Euro filter and a plain exponential low-pass.

Both work on whole arrays (all landmarks and coordinates at once). The One-Euro filter smooths
hard while a point is still and follows it closely when it moves fast (Casiez et al., CHI 2012),
in the variant MediaPipe uses: speed is measured in object sizes per second when given a scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    """Cutoffs in Hz: `min_cutoff` when still, raised by `beta` x speed; `derivate_cutoff` smooths the speed.

    `frequency` is assumed until two timestamps give the real frame rate.
    """

    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0
    frequency: float = 30.0


def _alpha(cutoff: np.ndarray | float, frequency: float) -> np.ndarray | float:
    """Exponential smoothing factor for a first-order low-pass at `cutoff` Hz sampled at `frequency` Hz."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * frequency)


class LowPassFilter:
    """Exponential moving average: `alpha` x new + (1 - alpha) x previous; the first value passes through."""

    def __init__(self, alpha: float | None = None):
        self.alpha = alpha
        self.value: np.ndarray | None = None
        self.raw: np.ndarray | None = None

    def __call__(self, value: np.ndarray, alpha: np.ndarray | float | None = None) -> np.ndarray:
        alpha = self.alpha if alpha is None else alpha
        value = np.asarray(value, dtype=np.float64)
        self.value = value.copy() if self.value is None else alpha * value + (1.0 - alpha) * self.value
        self.raw = value
        return self.value.copy()


class OneEuroFilter:
    """One-Euro filter over an array of values sharing one timestamp per call."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next value passes through unchanged."""
        self.frequency = self.params.frequency
        self.last_time: float | None = None
        self.x = LowPassFilter()
        self.dx = LowPassFilter()

    def __call__(self, value: np.ndarray, timestamp: float, value_scale: float = 1.0) -> np.ndarray:
        """Filter `value` seen at `timestamp` (seconds); `value_scale` turns value units into object sizes.

        A timestamp that does not move forward returns the value unfiltered and changes nothing.
        """
        value = np.asarray(value, dtype=np.float64)
        if self.last_time is not None:
            if timestamp <= self.last_time:
                return value.copy()
            self.frequency = 1.0 / (timestamp - self.last_time)
        self.last_time = timestamp
        speed = 0.0 if self.x.raw is None else (value - self.x.raw) * value_scale * self.frequency
        smooth_speed = self.dx(speed, _alpha(self.params.derivate_cutoff, self.frequency))
        cutoff = self.params.min_cutoff + self.params.beta * np.abs(smooth_speed)
        return self.x(value, _alpha(cutoff, self.frequency))
