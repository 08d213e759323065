"""The JSON bodies of piposer's MQTT topics (poses, state, events, stats), built from plain data.

Kept apart from the connection code so the message contract documented in docs/mqtt.md can be
tested and measured without a broker.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..types import Frame, Pose, pose_to_dict

SCHEMA = 1
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def poses_payload(frame: Frame, poses: list[Pose], model_name: str) -> dict:
    """One frame's poses: when (capture wall time), which frame, how big, which model, and each pose."""
    return {
        "schema": SCHEMA,
        "timestamp": round(frame.wall_time or time.time(), 3),
        "frame": frame.index,
        "width": frame.width,
        "height": frame.height,
        "model": model_name,
        "poses": [pose_to_dict(pose) for pose in poses],
    }


def state_payload(people: int, since: float, status: str = "running") -> dict:
    """The retained summary: how many people, whether anyone is there, since when (wall time), and whether
    detection is "running", "paused" or "starting" (no frame yet: the counts mean nothing)."""
    return {"people": people, "presence": people > 0, "since": round(since, 3), "status": status}


def event_payload(kind: str, fields: dict) -> dict:
    return {"event": kind, "timestamp": round(time.time(), 3), **fields}


def percentiles_ms(seconds, qs: tuple[int, ...] = (50, 95)) -> dict:
    """Percentiles `qs` of durations given in seconds, in milliseconds, as {"p50": ..., "p95": ...}
    (None when there were none)."""
    if not seconds:
        return {f"p{q}": None for q in qs}
    values = np.percentile(np.fromiter(seconds, float) * 1000.0, qs)
    return {f"p{q}": round(float(v), 2) for q, v in zip(qs, values)}


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """The SoC temperature in °C from sysfs, or None where the kernel does not expose it."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def encode(data: dict) -> bytes:
    """Compact JSON; a non-finite float (a model glitch) becomes null so strict parsers (Node-RED) still read it."""
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=_plain)
    except ValueError:
        text = json.dumps(_finite(data), separators=(",", ":"), allow_nan=False, default=_plain)
    return text.encode("utf-8")


def _plain(value):
    """numpy scalars and arrays from rules or the app, as plain JSON values; anything else as its str()."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return _finite(value.tolist())
    return value
