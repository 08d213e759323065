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
            label = " ".join(filter(None, [
                f"{pose.track_id}:" if pose.track_id is not None else "", pose.handedness, f"{pose.score:.2f}"]))
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


ZONE, ZONE_ACTIVE = (0, 220, 255), (0, 0, 255)  # BGR: amber while the rule is idle, red while it is active


def draw_zones(image: np.ndarray, zones: list[tuple[str, np.ndarray]], active: set[str]) -> np.ndarray:
    """Draw rule zones onto the BGR image in place: (rule name, normalized (n, 2) outline) pairs, outlined
    and labelled, filled translucent while the rule is in `active`."""
    h, w = image.shape[:2]
    scale = max(1, round(max(h, w) / 640))
    for name, outline in zones:
        points = np.round(outline * (w - 1, h - 1)).astype(np.int32)
        color = ZONE_ACTIVE if name in active else ZONE
        if name in active:
            tint = image.copy()
            cv2.fillPoly(tint, [points], color)
            cv2.addWeighted(tint, 0.25, image, 0.75, 0, dst=image)
        cv2.polylines(image, [points], True, color, 2 * scale, cv2.LINE_AA)
        x, y = points.min(axis=0)
        cv2.putText(image, name, (int(x) + 4, int(y) + 16 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, color, scale)
    return image
