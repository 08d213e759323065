"""Stable person ids across frames: greedy matching on keypoint similarity (COCO's OKS).

Each frame's poses are compared with the live tracks as one vectorized (poses x tracks) OKS matrix;
the best pairs above `min_similarity` are taken greedily, the rest of the poses start new tracks, and a
track not seen for `max_age` seconds is forgotten. Ids are never reused within a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..types import Layout, Pose
from .settings import TrackingSettings

# Per-keypoint OKS falloff (COCO's sigmas), by body part; BlazePose's extra points borrow their neighbour's.
PART_SIGMAS = {
    "nose": 0.026, "eye": 0.025, "eye_inner": 0.025, "eye_outer": 0.025, "ear": 0.035, "mouth": 0.026,
    "shoulder": 0.079, "elbow": 0.072, "wrist": 0.062, "pinky": 0.062, "index": 0.062, "thumb": 0.062,
    "hip": 0.107, "knee": 0.087, "ankle": 0.089, "heel": 0.089, "foot_index": 0.089,
}


def sigmas(layout: Layout) -> np.ndarray:
    """OKS sigma of each keypoint of `layout`, looked up by name without its left_/right_ side."""
    parts = [name.removeprefix("left_").removeprefix("right_") for name in layout.keypoints]
    return np.array([PART_SIGMAS.get(part, 0.07) for part in parts])


def oks_matrix(xy_a, seen_a, area_a, xy_b, seen_b, area_b, sigma) -> np.ndarray:
    """OKS between every pose of set A (N, K, 2) and of set B (M, K, 2), over keypoints seen in both.

    The object scale is the larger of the two boxes' areas; pairs sharing no keypoint score 0.
    """
    both = seen_a[:, None, :] & seen_b[None, :, :]
    d2 = ((xy_a[:, None, :, :] - xy_b[None, :, :, :]) ** 2).sum(-1)
    scale = np.maximum(np.maximum(area_a[:, None], area_b[None, :]), 1.0)
    terms = np.exp(-d2 / (2.0 * scale[..., None] * (2.0 * sigma) ** 2))
    count = both.sum(-1)
    return np.where(count > 0, (terms * both).sum(-1) / np.maximum(count, 1), 0.0)


@dataclass
class Track:
    """A person being followed: last known keypoints (kept for points that drop out), box area, last seen time."""

    id: int
    xy: np.ndarray
    seen: np.ndarray
    area: float
    last_seen: float


class Tracker:
    """Assigns `pose.track_id` so the same person keeps the same id from frame to frame."""

    def __init__(self, settings: TrackingSettings | None = None):
        self.settings = settings or TrackingSettings()
        self.tracks: list[Track] = []
        self.next_id = 1
        self._sigmas: dict[str, np.ndarray] = {}

    def update(self, poses: list[Pose], timestamp: float) -> list[Pose]:
        """Match `poses` (one frame, captured at monotonic `timestamp`) to tracks and set their track_id."""
        if not self.settings.enabled:
            return poses
        self.tracks = [t for t in self.tracks if timestamp - t.last_seen <= self.settings.max_age]
        pairs = self._match(poses) if poses and self.tracks else []
        matched_poses = {p for p, _ in pairs}
        for p, t in pairs:
            self._refresh(self.tracks[t], poses[p], timestamp)
        for i, pose in enumerate(poses):
            if i not in matched_poses:
                self._start(pose, timestamp)
        return poses

    def _match(self, poses: list[Pose]) -> list[tuple[int, int]]:
        layout = poses[0].layout
        sigma = self._sigmas.setdefault(layout.name, sigmas(layout))
        xy = np.stack([p.xy() for p in poses])
        seen = np.stack([p.detected() for p in poses])
        area = np.array([p.box.area for p in poses])
        similarity = oks_matrix(
            xy, seen, area,
            np.stack([t.xy for t in self.tracks]), np.stack([t.seen for t in self.tracks]),
            np.array([t.area for t in self.tracks]), sigma,
        )
        order = np.argsort(-similarity, axis=None, kind="stable")
        rows, cols = np.unravel_index(order, similarity.shape)
        pairs, used_p, used_t = [], set(), set()
        for p, t in zip(rows.tolist(), cols.tolist()):
            if similarity[p, t] < self.settings.min_similarity:
                break
            if p not in used_p and t not in used_t:
                pairs.append((p, t))
                used_p.add(p)
                used_t.add(t)
        return pairs

    def _refresh(self, track: Track, pose: Pose, timestamp: float) -> None:
        seen = pose.detected()
        track.xy = np.where(seen[:, None], pose.xy(), track.xy)
        track.seen = seen | track.seen
        track.area = pose.box.area
        track.last_seen = timestamp
        pose.track_id = track.id

    def _start(self, pose: Pose, timestamp: float) -> None:
        track = Track(self.next_id, pose.xy(), pose.detected(), pose.box.area, timestamp)
        self.next_id += 1
        self.tracks.append(track)
        pose.track_id = track.id
