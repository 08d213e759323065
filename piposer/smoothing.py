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
    """Cutoffs in Hz: `min_cutoff` when still, raised by `beta` x speed; `derivate_cutoff` smooths the speed."""

    min_cutoff: float
    beta: float
    derivate_cutoff: float = 1.0


# MediaPipe's pose landmark smoothing (speeds in body sizes per second); every family's keypoints use it.
LANDMARK_FILTER = OneEuroParams(min_cutoff=0.05, beta=80.0, derivate_cutoff=1.0)


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


def one_euro_step(params: OneEuroParams, value, raw, smoothed, speed, frequency, value_scale=1.0):
    """One One-Euro step from the previous raw value, smoothed value and smoothed speed; returns the new
    smoothed value and speed. Arrays broadcast, so one call can step many histories, each at its own
    frequency and scale."""
    raw_speed = (value - raw) * value_scale * frequency
    speed = speed + _alpha(params.derivate_cutoff, frequency) * (raw_speed - speed)
    cutoff = params.min_cutoff + params.beta * np.abs(speed)
    return smoothed + _alpha(cutoff, frequency) * (value - smoothed), speed


class OneEuroFilter:
    """One-Euro filter over an array of values sharing one timestamp per call."""

    def __init__(self, params: OneEuroParams):
        self.params = params
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next value passes through unchanged."""
        self.last_time: float | None = None
        self.raw = self.value = self.speed = None

    def __call__(self, value: np.ndarray, timestamp: float, value_scale: float = 1.0) -> np.ndarray:
        """Filter `value` seen at `timestamp` (seconds); `value_scale` turns value units into object sizes.

        A timestamp that does not move forward returns the value unfiltered and changes nothing.
        """
        value = np.asarray(value, dtype=np.float64)
        if self.last_time is None:
            self.value, self.speed = value.copy(), np.zeros_like(value)
        elif timestamp <= self.last_time:
            return value.copy()
        else:
            frequency = 1.0 / (timestamp - self.last_time)
            self.value, self.speed = one_euro_step(self.params, value, self.raw, self.value, self.speed,
                                                   frequency, value_scale)
        self.raw, self.last_time = value, timestamp
        return self.value.copy()
