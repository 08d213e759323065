"""Stable person ids across frames: predicted boxes, IoU + keypoint similarity, optimal assignment.

Every frame, each track's box is moved on by a constant-velocity Kalman filter (kalman.py) and its last
keypoints with it; detections are compared with those predictions by a mix of box IoU and COCO's
keypoint similarity (OKS), and matched by solving the assignment problem (LAPJV, from `lap`). As in
ByteTrack, poses scoring at least the loop's `min_score` are matched first, then the weak ones
(`low_score` and up) may continue a track that just went unmatched, so a person who dims for a frame
keeps their id; weak poses never start a track. A new track is tentative until it has been matched in
`min_hits` consecutive frames, and only then gets a public id (ids count up, never reused) and is
output; a confirmed track that goes unseen is kept, and can be matched again, for `max_age` seconds.
Keypoints of tracked poses are then smoothed per track (smoother.py) unless the estimator did it.
"""

from __future__ import annotations

import lap
import numpy as np

from ..types import Layout, Pose, keypoint_arrays, move_poses
from .kalman import BoxKalman
from .settings import TrackingSettings
from .smoother import KeypointSmoother

# Per-keypoint OKS falloff (COCO's sigmas), by body part; BlazePose's extra points borrow their neighbour's.
PART_SIGMAS = {
    "nose": 0.026, "eye": 0.025, "eye_inner": 0.025, "eye_outer": 0.025, "ear": 0.035, "mouth": 0.026,
    "shoulder": 0.079, "elbow": 0.072, "wrist": 0.062, "pinky": 0.062, "index": 0.062, "thumb": 0.062,
    "hip": 0.107, "knee": 0.087, "ankle": 0.089, "heel": 0.089, "foot_index": 0.089,
}
OKS_WEIGHT = 0.5   # similarity = OKS_WEIGHT x OKS + (1 - OKS_WEIGHT) x box IoU
WEAK_MATCH = 0.5   # a weak pose continues a track only when this alike (ByteTrack's stricter second pass)


def sigmas(layout: Layout) -> np.ndarray:
    """OKS sigma of each keypoint of `layout`, looked up by name without its left_/right_ side."""
    parts = [name.removeprefix("left_").removeprefix("right_") for name in layout.keypoints]
    return np.array([PART_SIGMAS.get(part, 0.07) for part in parts])


def oks_matrix(xy_a, seen_a, area_a, xy_b, seen_b, area_b, sigma) -> np.ndarray:
    """OKS between every pose of set A (N, K, 2) and of set B (M, K, 2), over keypoints seen in both.

    The object scale is the larger of the two boxes' areas; pairs sharing no keypoint score 0. Exponents are
    cut at -50 (a term of 2e-22 at most), below which the C library's exp takes a slow underflow path.
    """
    d = xy_a[:, None] - xy_b[None]
    d *= d
    d2 = d[..., 0] + d[..., 1]
    d2 *= -0.125 / (sigma * sigma)
    d2 /= np.maximum(np.maximum.outer(area_a, area_b), 1.0)[..., None]
    terms = np.exp(np.maximum(d2, -50.0, out=d2), out=d2)
    both = seen_a[:, None, :] & seen_b[None, :, :]
    return np.add.reduce(np.where(both, terms, 0.0), -1) / np.maximum(np.add.reduce(both, -1), 1)


def iou_matrix(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """IoU between every (cx, cy, w, h) box of `a` (N, 4) and of `b` (M, 4), whose areas are `area_a` and `area_b`."""
    half_a, half_b = a[:, None, 2:] * 0.5, b[None, :, 2:] * 0.5
    sides = np.minimum(a[:, None, :2] + half_a, b[None, :, :2] + half_b)
    sides -= np.maximum(a[:, None, :2] - half_a, b[None, :, :2] - half_b)
    np.maximum(sides, 0.0, out=sides)
    inter = sides[..., 0] * sides[..., 1]
    return inter / np.maximum(np.add.outer(area_a, area_b) - inter, 1e-9)


def assign(similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of the assignment maximizing total similarity, each pair at least `threshold` alike.

    When no row or column has more than one pair alike enough, those pairs are the assignment (the usual
    case: people apart from each other), and the solver is needed only when they compete.
    """
    rows, columns = np.nonzero(similarity >= threshold)
    if len(set(rows.tolist())) == len(rows) and len(set(columns.tolist())) == len(columns):
        return rows, columns
    _, columns, _ = lap.lapjv(1.0 - similarity, extend_cost=True, cost_limit=1.0 - threshold + 1e-9)
    rows = np.flatnonzero(columns >= 0)
    columns = columns[rows]
    alike = similarity[rows, columns] >= threshold
    return rows[alike], columns[alike]


def box_rows(poses: list[Pose]) -> np.ndarray:
    """The poses' boxes as (cx, cy, w, h) rows, at least a pixel wide and high (plain Python for a few poses
    beats five array steps)."""
    rows = [((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, 1.0), max(y1 - y0, 1.0)) for x0, y0, x1, y1 in
            [p.box for p in poses]]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


class Tracker:
    """Assigns `pose.track_id` so the same person keeps the same id from frame to frame.

    The tracks are rows of arrays: the Kalman boxes, last keypoints `xy` (kept for points that drop
    out) and `seen`, the box centre at their last match (`anchor`, to carry keypoints along with the
    prediction), consecutive `hits`, `last_seen` time and public `ids` (0 while tentative).
    """

    def __init__(self, settings: TrackingSettings | None = None):
        self.settings = settings or TrackingSettings()
        self.boxes = BoxKalman()
        self.layout: Layout | None = None
        self.sigma: np.ndarray | None = None
        self.xy = self.seen = self.anchor = None
        self.hits, self.last_seen, self.ids = np.zeros(0, int), np.zeros(0), np.zeros(0, int)
        self.smoother = KeypointSmoother()  # its rows follow the tracks' rows
        self.next_id = 1
        self.frames = 0
        self.last_time: float | None = None

    def __len__(self) -> int:
        """How many people are being followed (tentative, seen and recently lost)."""
        return len(self.ids)

    def update(self, poses: list[Pose], timestamp: float, *, min_score: float = 0.0,
               smooth: bool = True) -> list[Pose]:
        """The tracked poses of one frame captured at monotonic `timestamp` (the poses given, not copies), with
        `track_id` set and keypoints smoothed (`move_poses`).

        Poses below `min_score` only continue existing tracks; `smooth` False leaves keypoints as they
        are (for estimators that smooth their own). Poses of tentative tracks are not returned.
        """
        s = self.settings
        strong = [p for p in poses if p.score >= min_score]
        if not s.enabled:
            return strong
        weak = [p for p in poses if s.low_score <= p.score < min_score]
        candidates = strong + weak
        previous, self.last_time = self.last_time, timestamp
        if candidates and candidates[0].layout != self.layout:  # a new model: nobody can be matched
            self._reset(candidates[0].layout)
        self._forget(timestamp, previous)
        self.boxes.predict(0.0 if previous is None else timestamp - previous)
        self.frames += 1
        if not candidates:
            return []
        xy, seen = keypoint_arrays(candidates)
        boxes = box_rows(candidates)
        poses, rows = self._match(slice(0, len(strong)), xy, seen, boxes, None, s.min_similarity)
        if len(weak):
            free = self.last_seen == previous
            free[rows] = False
            more = self._match(slice(len(strong), len(candidates)), xy, seen, boxes, np.flatnonzero(free), WEAK_MATCH)
            poses, rows = np.concatenate([poses, more[0]]), np.concatenate([rows, more[1]])
        self._refresh(poses, rows, xy, seen, boxes, timestamp)
        row_of = np.full(len(candidates), -1)
        row_of[poses] = rows
        new = np.flatnonzero(row_of[:len(strong)] < 0)
        row_of[new] = self._start(new, xy, seen, boxes, timestamp)
        self._confirm()
        ids = np.append(self.ids, 0)[row_of]  # row -1, an unmatched weak pose, reads the 0 appended: no id
        shown = np.flatnonzero(ids)
        tracked = [candidates[i] for i in shown.tolist()]
        for pose, track_id in zip(tracked, ids[shown].tolist()):
            pose.track_id = track_id
        if smooth and s.smooth and tracked:
            rows = row_of[shown]
            if len(shown) < len(candidates):  # else every pose is shown (the usual frame), in order: no copies
                xy, seen = xy[shown], seen[shown]
            box = self.boxes.boxes[rows]
            move_poses(tracked, self.smoother.smooth(rows, xy, seen, (box[:, 2] + box[:, 3]) * 0.5, timestamp), seen)
        return tracked

    def _match(self, which: slice, xy: np.ndarray, seen: np.ndarray, boxes: np.ndarray, rows: np.ndarray | None,
               threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """The (pose, track row) pairs between the poses at `which` (of all the frame's keypoints `xy`,
        detections `seen` and `boxes`) and the tracks at `rows` (None: all), each at least `threshold` alike."""
        tracks = slice(None) if rows is None else rows  # a slice reads views, an index array copies
        predicted = self.boxes.boxes[tracks]
        if which.start == which.stop or not len(predicted):
            return np.zeros(0, int), np.zeros(0, int)
        track_xy = self.xy[tracks] + (predicted[:, None, :2] - self.anchor[tracks, None])
        mine = boxes[which]
        area, predicted_area = mine[:, 2] * mine[:, 3], predicted[:, 2] * predicted[:, 3]
        oks = oks_matrix(xy[which], seen[which], area, track_xy, self.seen[tracks], predicted_area, self.sigma)
        similarity = OKS_WEIGHT * oks + (1.0 - OKS_WEIGHT) * iou_matrix(mine, area, predicted, predicted_area)
        poses, matched = assign(similarity, threshold)
        return poses + which.start, matched if rows is None else rows[matched]

    def _refresh(self, poses: np.ndarray, rows: np.ndarray, xy: np.ndarray, seen: np.ndarray, boxes: np.ndarray,
                 timestamp: float) -> None:
        """Move the tracks at `rows` to their matched `poses`: Kalman correction, keypoints, anchor, hits, time."""
        self.boxes.update(rows, boxes[poses])
        self.xy[rows] = np.where(seen[poses, :, None], xy[poses], self.xy[rows])
        self.seen[rows] |= seen[poses]
        self.anchor[rows] = self.boxes.boxes[rows, :2]
        self.hits[rows] += 1
        self.last_seen[rows] = timestamp

    def _start(self, which: np.ndarray, xy: np.ndarray, seen: np.ndarray, boxes: np.ndarray,
               timestamp: float) -> np.ndarray:
        """New tentative tracks for the unmatched strong poses at `which`; returns their rows."""
        first = len(self)
        if not len(which):
            return np.zeros(0, int)
        self.boxes.add(boxes[which])
        self.xy = np.concatenate([self.xy, xy[which]])
        self.seen = np.concatenate([self.seen, seen[which]])
        self.anchor = np.concatenate([self.anchor, boxes[which, :2]])
        self.hits = np.concatenate([self.hits, np.ones(len(which), int)])
        self.last_seen = np.concatenate([self.last_seen, np.full(len(which), timestamp)])
        self.ids = np.concatenate([self.ids, np.zeros(len(which), int)])
        self.smoother.add(len(which))
        return np.arange(first, len(self))

    def _confirm(self) -> None:
        """Give public ids to tracks matched often enough (at once in a run's first frames, as in SORT)."""
        if self.ids.all():  # nobody tentative: the usual frame
            return
        matched = (self.ids == 0) & (self.last_seen == self.last_time)
        ready = np.flatnonzero(matched & ((self.hits >= self.settings.min_hits) | (self.frames <= self.settings.min_hits)))
        self.ids[ready] = np.arange(self.next_id, self.next_id + len(ready))
        self.next_id += len(ready)

    def _forget(self, timestamp: float, previous: float | None) -> None:
        """Drop tentative tracks missed in the previous frame and confirmed ones unseen for longer than max_age."""
        keep = np.where(self.ids == 0, self.last_seen == previous, timestamp - self.last_seen <= self.settings.max_age)
        if not keep.all():
            self._keep(keep)

    def _reset(self, layout: Layout) -> None:
        """Forget every track and follow poses of `layout` from now on."""
        self.layout, self.sigma = layout, sigmas(layout)
        k = len(layout.keypoints)
        self.xy, self.seen, self.anchor = np.zeros((len(self), k, 2)), np.zeros((len(self), k), bool), np.zeros((len(self), 2))
        self._keep(np.zeros(len(self), bool))
        self.smoother = KeypointSmoother(k)

    def _keep(self, rows: np.ndarray) -> None:
        self.boxes.keep(rows)
        self.smoother.keep(rows)
        for name in ("xy", "seen", "anchor", "hits", "last_seen", "ids"):
            setattr(self, name, getattr(self, name)[rows])
