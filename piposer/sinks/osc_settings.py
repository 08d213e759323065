"""[[osc]] settings: one OSC destination and the shape it wants; light to import (no python-osc)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..types import LAYOUTS

KEYPOINT_NAMES = frozenset(name for layout in LAYOUTS.values() for name in layout.keypoints)
ADDRESS_PART = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$")  # OSC addresses: no spaces, no #*,?[]{}


@dataclass
class OscSettings:
    """[[osc]]: a destination host:port (UDP) and how it wants the poses.

    `coordinates` "normalized" sends 0..1 of the image (mirrored with `model.flip_horizontal`), "pixels"
    source-image pixels. `layout` "per_keypoint" sends `<prefix>/pose/<id>/<keypoint> x y score`;
    "flat" sends one `<prefix>/pose/<id>/keypoints x y score x y score ...` per pose (what TouchDesigner's
    OSC In CHOP turns into channels). `keypoints` picks which (empty: all the model's), `max_rate_hz`
    caps the frame bundles (0: every frame; events are never held back).
    """

    host: str = "127.0.0.1"
    port: int = 9000
    prefix: str = "/piposer"
    coordinates: Literal["normalized", "pixels"] = "normalized"
    layout: Literal["per_keypoint", "flat"] = "per_keypoint"
    keypoints: list[str] = field(default_factory=list)
    max_rate_hz: float = 0.0

    def __post_init__(self):
        from ..checks import check_range

        if not self.host.strip():
            raise ValueError("osc.host must not be empty")
        check_range("osc.port", self.port, 1, 65535)
        check_range("osc.max_rate_hz", self.max_rate_hz, 0, 1000)
        if not ADDRESS_PART.match(self.prefix):
            raise ValueError(f"osc.prefix must look like /name or /name/sub (letters, digits, _ . -), not {self.prefix!r}")
        unknown = [name for name in self.keypoints if name not in KEYPOINT_NAMES]
        if unknown:
            raise ValueError(f"osc.keypoints: unknown keypoint {unknown[0]!r} (e.g. nose, left_wrist, right_ankle)")
