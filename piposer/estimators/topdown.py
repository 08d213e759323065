"""Top-down BlazePose for groups: a multi-person estimator proposes people, BlazePose's landmark model measures each.

BlazePose's own detector is built for people near the camera; PoseNet and MoveNet MultiPose find
people further away. `PoseProposer` stands in for the detector: it runs such an estimator and turns
each proposal's COCO keypoints into the two alignment points the detector would have given, so the
rotated-square ROI maths (roi.py) and everything after it stay BlazePose's own.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ..types import COCO17, keypoint_arrays
from .roi import Roi, roi_from_alignment

# Measured on BlazePose's own results (39 people on the shared photos and room videos): its alignment
# circle is centred on the hip midpoint (within 0.5% of its radius), points from the hips to the shoulder
# midpoint (within 1.5 degrees), and its radius is 1.76 torso lengths (5-95%: 1.67-1.92) or 1.19 times
# the farthest keypoint's distance from the hips (1.09-1.30). (1.8, for PoseNet's and MoveNet's torsos
# coming out 3% shorter than BlazePose's, scored lower on coco_dev: AP 0.329 / 0.344 against 0.353 / 0.356.)
RADIUS_PER_TORSO = 1.75
RADIUS_PER_EXTENT = 1.19
# Torso length over the larger of shoulder width and nose-to-shoulders distance, same people: 1.8 (1.3-2.8).
TORSO_PER_UPPER_BODY = 1.8
NOSE = COCO17.index("nose")
HIPS = [COCO17.index("left_hip"), COCO17.index("right_hip")]
SHOULDERS = [COCO17.index("left_shoulder"), COCO17.index("right_shoulder")]
PROPOSER_MODELS = {"posenet": "posenet", "movenet": "movenet-multipose"}


def _mean_of(points: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean (N, 2) of each row's seen points (N, P, 2), and whether a row had any."""
    count = seen.sum(axis=1)
    return (points * seen[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None], count > 0


def alignment_points(xy: np.ndarray, detected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose's alignment points (centres (N, 2), scale points (N, 2)) from N COCO-17 poses (N, 17, 2).

    Hips and shoulders count when either side is detected (both are averaged). With both, the centre is
    the hip midpoint and the scale point lies 1.75 torso lengths towards the shoulder midpoint. With
    shoulders but no hips (a person cut off at the waist), the hips are put straight below the shoulders,
    1.8 times the larger of shoulder width and nose-to-shoulders distance down. Otherwise the person is taken
    upright, centred on the box of the detected keypoints, reaching 1.19 times the farthest one.
    """
    hip, has_hip = _mean_of(xy[:, HIPS], detected[:, HIPS])
    shoulder, has_shoulder = _mean_of(xy[:, SHOULDERS], detected[:, SHOULDERS])
    torso = shoulder - hip
    length = np.linalg.norm(torso, axis=1)
    aligned = has_hip & has_shoulder & (length > 0)
    both_shoulders = detected[:, SHOULDERS].all(axis=1)
    width = np.where(both_shoulders, np.linalg.norm(xy[:, SHOULDERS[0]] - xy[:, SHOULDERS[1]], axis=1), 0)
    head = np.where(detected[:, NOSE] & has_shoulder, np.linalg.norm(xy[:, NOSE] - shoulder, axis=1), 0)
    upper = ~aligned & has_shoulder & (np.maximum(width, head) > 0)
    length = np.where(aligned, length, np.where(upper, TORSO_PER_UPPER_BODY * np.maximum(width, head), 0))
    seen = np.where(detected.any(axis=1, keepdims=True), detected, True)
    low = np.where(seen[..., None], xy, np.inf).min(axis=1)
    high = np.where(seen[..., None], xy, -np.inf).max(axis=1)
    up = np.where(aligned[:, None], torso / np.maximum(length, 1e-9)[:, None], [0.0, -1.0])
    centre = np.where(aligned[:, None], hip, np.where(upper[:, None], shoulder - length[:, None] * up,
                                                      (low + high) / 2))
    reach = np.where(seen, np.linalg.norm(xy - centre[:, None], axis=2), 0).max(axis=1)
    radius = np.where(length > 0, RADIUS_PER_TORSO * length, RADIUS_PER_EXTENT * reach)
    return centre, centre + radius[:, None] * up


class PoseProposer:
    """A multi-person estimator in the BlazePose detector's place: frame in, one ROI per proposed person out."""

    def __init__(self, estimator, roi_scale: float):
        self.estimator = estimator
        self.roi_scale = roi_scale

    def detect(self, image: np.ndarray, max_count: int, clock) -> list[Roi]:
        """ROIs of every proposed person, largest (nearest) first, as BlazePose's detector favours them (pixels
        of the image as the estimator mirrors it): more than `max_count`, as the landmark model turns some
        down (a hand, a face, one person twice)."""
        clock.lap("decode")
        poses = self.estimator.estimate(image)
        for stage, seconds in self.estimator.timings.items():
            clock.timings[stage] += seconds
        clock.last += sum(self.estimator.timings.values())  # the proposer's own stages are counted above
        if not poses:
            return []
        centres, points = alignment_points(*keypoint_arrays(poses))
        rois = [roi_from_alignment(c, p, self.roi_scale) for c, p in zip(centres, points)]
        return sorted(rois, key=lambda roi: -roi.size)


def build_proposer(config, person_detector: str, store):
    """The proposer estimator for `person_detector` ("posenet" or "movenet"), built by `create` from a copy of
    `config` (its [posenet] or [movenet] section applies) with BlazePose's threads, keypoint threshold and
    mirroring; it runs on single frames (BlazePose does the tracking)."""
    from . import create

    proposer = copy.copy(config)
    proposer.model = dataclasses.replace(config.model, name=PROPOSER_MODELS[person_detector])
    return create(proposer, running_mode="image", store=store)
