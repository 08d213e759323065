"""Drawing poses onto frames: skeleton links, keypoints and boxes, chosen like jetson-inference's --overlay."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import PiposerError
from ..types import Pose

OVERLAYS = ("links", "keypoints", "box", "none")
PALETTE = [(255, 128, 0), (0, 200, 255), (0, 255, 0), (255, 0, 255), (0, 128, 255), (255, 255, 0)]


def parse_overlay(spec: str) -> frozenset[str]:
    """'links,keypoints' -> {'links', 'keypoints'}; 'none' draws nothing."""
    parts = frozenset(p.strip() for p in spec.split(",") if p.strip())
    bad = parts - set(OVERLAYS)
    if bad:
        raise PiposerError(f"--overlay: unknown '{sorted(bad)[0]}' (choose from {', '.join(OVERLAYS)})")
    return frozenset() if "none" in parts else parts


def draw(image: np.ndarray, poses: list[Pose], overlay: frozenset[str], mirrored: bool = False) -> np.ndarray:
    """A copy of the BGR image with the poses drawn; only detected keypoints and links between them.

    `mirrored`: the poses came from the mirrored image (`model.flip_horizontal`), so draw on that.
    """
    out = cv2.flip(image, 1) if mirrored else image.copy()
    scale = max(1, round(max(image.shape[:2]) / 640))
    for i, pose in enumerate(poses):
        color = PALETTE[(pose.track_id if pose.track_id is not None else i) % len(PALETTE)]
        xy = np.round(pose.xy()).astype(int)
        seen = pose.detected()
        if "box" in overlay:
            b = pose.box
            cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), color, scale)
            label = f"{pose.track_id}: {pose.score:.2f}" if pose.track_id is not None else f"{pose.score:.2f}"
            cv2.putText(out, label, (int(b.x0), max(int(b.y0) - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5 * scale, color, scale)
        if "links" in overlay:
            for a, b in pose.layout.links:
                if seen[a] and seen[b]:
                    cv2.line(out, tuple(xy[a]), tuple(xy[b]), color, 2 * scale, cv2.LINE_AA)
        if "keypoints" in overlay:
            for point in xy[seen]:
                cv2.circle(out, tuple(point), 3 * scale, (255, 255, 255), -1, cv2.LINE_AA)
                cv2.circle(out, tuple(point), 3 * scale, color, 1, cv2.LINE_AA)
    return out
