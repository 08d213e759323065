"""Tiles for finding small people in a wide frame: overlapping squares of the frame's short side, one model pass
each, and the duplicates where tiles overlap merged away.

A fixed-input model letterboxes a 1280x720 frame to a fifth of its size; two 720 px tiles see it at a third.
"""

from __future__ import annotations

import numpy as np

from .roi import Roi, letterbox_roi


def tile_regions(width: int, height: int, tiles: int) -> list[Roi]:
    """`tiles` squares of the short side spread evenly along the long side (1: the whole frame letterboxed)."""
    if tiles == 1:
        return [letterbox_roi(width, height)]
    side, long = min(width, height), max(width, height)
    centres = np.linspace(side / 2, long - side / 2, tiles)
    if width >= height:
        return [Roi(float(c), height / 2, float(side)) for c in centres]
    return [Roi(width / 2, float(c), float(side)) for c in centres]


def distinct(boxes: np.ndarray, scores: np.ndarray, overlap: float = 0.5) -> np.ndarray:
    """Indices of (N, 4) x0, y0, x1, y1 boxes best score first, dropping any box that a better one covers by
    more than `overlap` of the smaller box's area (a person seen whole in one tile and cut off in the next)."""
    order = np.argsort(-scores)
    boxes = boxes[order]
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1e-6, None), axis=1)
    covered = inter / np.minimum(area[:, None], area[None, :]) > overlap
    keep: list[int] = []
    for i in range(len(boxes)):
        if not any(covered[i, j] for j in keep):
            keep.append(i)
    return order[keep]
