"""MoveNet SinglePose's crop region for video: the square the next frame is cropped to, from this frame's keypoints.

This is the algorithm Google publishes with MoveNet (TF Hub tutorial, Raspberry Pi example): centre on the
hips, half side the larger of 1.9x the torso's and 1.2x the confident body's reach from that centre, kept
within reach of the frame; the whole frame (letterboxed) when the torso is lost or the body fills it.
"""

from __future__ import annotations

import numpy as np

from .roi import Roi, letterbox_roi

MIN_CROP_KEYPOINT_SCORE = 0.2
TORSO_EXPANSION = 1.9
BODY_EXPANSION = 1.2
SHOULDERS, HIPS = [5, 6], [11, 12]  # COCO-17 indices


def torso_visible(scores: list[float]) -> bool:
    """Whether a shoulder and a hip are confident enough to place a crop on."""
    return max(scores[i] for i in SHOULDERS) > MIN_CROP_KEYPOINT_SCORE < max(scores[i] for i in HIPS)


def next_crop_region(xy: np.ndarray, scores: np.ndarray, width: int, height: int) -> Roi:
    """The square region (image pixels) to crop the next frame to, from (17, 2) keypoints and (17,) scores.

    Google's Raspberry Pi example measures the body's reach from one torso joint repeated (a slip in its
    loop); this follows the TF Hub tutorial, which measures every confident keypoint. Seventeen values are
    Python floats after one conversion: a third of the time of numpy steps on them.
    """
    scores = scores.tolist()
    if not torso_visible(scores):
        return letterbox_roi(width, height)
    centre = (xy[HIPS[0]] + xy[HIPS[1]]) / 2
    reach = np.abs(xy - centre).max(axis=1).tolist()  # each keypoint's L-inf distance from the centre
    torso_reach = max(reach[i] for i in SHOULDERS + HIPS)
    body_reach = max(r for r, score in zip(reach, scores) if score > MIN_CROP_KEYPOINT_SCORE)
    (cx, cy), half = centre.tolist(), max(torso_reach * TORSO_EXPANSION, body_reach * BODY_EXPANSION)
    half = min(half, max(cx, width - cx, cy, height - cy))
    if half > max(width, height) / 2:
        return letterbox_roi(width, height)
    return Roi(cx, cy, 2.0 * half)
