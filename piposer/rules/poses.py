"""Poses and hand shapes taught by example: k nearest neighbours over normalized keypoints, per tracked person or hand.

Body keypoints are made translation and scale invariant (origin between the shoulders, unit one body size:
the larger of shoulder width and torso length) and, optionally, mirror invariant (the distance to an
example is the smaller of the distances to it and to its left-right mirror image). Hand landmarks are
also made rotation invariant (origin the wrist, unit and up direction the wrist to middle knuckle vector,
the palm length) and always mirror invariant, so one taught shape fits either hand. Missing keypoints
are explicit: one detected in only one of the two poses costs a fixed `MISSING_COST` instead of being
skipped, so an undetected wrist neither matches nor rules out a raised one, and two poses must share
`MIN_SHARED` detected keypoints to be compared at all. A label's confidence is the share of the k
nearest examples that carry it and lie within `max_distance`, so a pose unlike every example gets
none. `Labeller` smooths confidences per person and adds hysteresis; `PoseStage` is the pipeline stage.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import PiposerError
from ..events import EventKind
from ..types import COCO17, HAND21, Layout, Pose
from .library import KINDS, Example, PoseLibrary, PoseSettings

log = logging.getLogger(__name__)

# Eyes and ears are left out: they move with the nose and would outweigh the limbs.
FEATURES = (
    "nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
MIRROR = [FEATURES.index(n.replace("left_", "@").replace("right_", "left_").replace("@", "right_")) for n in FEATURES]
LS, RS, LH, RH = (FEATURES.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
MISSING_COST = 0.25  # squared body sizes: a keypoint seen in only one pose counts as 0.5 body sizes off
MIN_SHARED = 5
WRIST, MIDDLE_MCP = HAND21.index("wrist"), HAND21.index("middle_finger_mcp")


def normalize(points: np.ndarray) -> np.ndarray:
    """(P, F, 2) FEATURES pixel positions (NaN: not detected) in body sizes from the shoulders' middle.

    A pose without both shoulders, or without any size, becomes all NaN (it cannot be classified).
    """
    points = np.asarray(points, dtype=np.float64)
    origin = (points[:, LS] + points[:, RS]) / 2
    width = np.linalg.norm(points[:, LS] - points[:, RS], axis=-1)
    hips = points[:, [LH, RH]]
    seen = np.isfinite(hips[..., 0])
    hip = np.where(seen[..., None], hips, 0.0).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)[:, None]
    torso = np.where(seen.any(axis=1), np.linalg.norm(hip - origin, axis=-1), np.nan)
    size = np.fmax(width, torso)
    size = np.where(size > 0, size, np.nan)
    return (points - origin[:, None]) / size[:, None, None]


def normalize_hand(points: np.ndarray) -> np.ndarray:
    """(P, 21, 2) hand landmark pixel positions in palm lengths from the wrist, turned so that the wrist to
    middle knuckle vector points up (0, -1): the hand's place, size and rotation in the image drop out."""
    points = np.asarray(points, dtype=np.float64)
    palm = points[:, MIDDLE_MCP] - points[:, WRIST]
    length = np.linalg.norm(palm, axis=-1)
    length = np.where(length > 0, length, np.nan)
    up = palm / length[:, None]  # the rotation taking `up` to (0, -1): rows (-uy, ux) and (-ux, -uy)
    rotation = np.stack([np.stack([-up[:, 1], up[:, 0]], -1), np.stack([-up[:, 0], -up[:, 1]], -1)], 1)
    return np.einsum("pij,pkj->pki", rotation, points - points[:, WRIST, None]) / length[:, None, None]


@dataclass(frozen=True)
class Kind:
    """What one kind of taught example is compared by: its stored layout, the keypoints used, how they
    are normalized, and the keypoint order of its mirror image."""

    name: str
    stored: Layout
    features: tuple[str, ...]
    normalize: Callable[[np.ndarray], np.ndarray]
    mirror: tuple[int, ...]
    always_mirrored: bool = False

    def take(self, stored: np.ndarray) -> np.ndarray:
        """(N, F, 2) feature keypoints from (N, K, 2) points in the stored layout's order."""
        return stored[:, [self.stored.index(n) for n in self.features]]


BODY = Kind("body", COCO17, FEATURES, normalize, tuple(MIRROR))
# a left hand is a mirrored right hand: mirroring keeps the landmark order (no left/right names to swap)
HAND = Kind("hand", HAND21, HAND21.keypoints, normalize_hand, tuple(range(len(HAND21.keypoints))), True)
KIND_OF = {kind.name: kind for kind in (BODY, HAND)}
assert tuple(KIND_OF) == KINDS


def kind_of(pose: Pose) -> Kind:
    return HAND if pose.layout.handed else BODY


def distances(query: np.ndarray, examples: np.ndarray) -> np.ndarray:
    """(P, N) RMS distances in body sizes between normalized poses, with MISSING_COST for a keypoint
    detected in only one of the two; inf for pairs sharing fewer than MIN_SHARED detected keypoints."""
    q_seen = np.isfinite(query[..., 0])[:, None]
    e_seen = np.isfinite(examples[..., 0])[None]
    both, one = q_seen & e_seen, q_seen ^ e_seen
    squared = ((query[:, None] - examples[None]) ** 2).sum(axis=-1)
    cost = np.where(both, squared, 0.0).sum(axis=-1) + MISSING_COST * one.sum(axis=-1)
    shared = both.sum(axis=-1)
    rms = np.sqrt(cost / np.maximum(shared + one.sum(axis=-1), 1))
    return np.where(shared >= MIN_SHARED, rms, np.inf)


def pose_points(poses: list[Pose], kind: Kind = BODY) -> np.ndarray:
    """(P, F, 2) pixel positions of the kind's feature keypoints, NaN where not detected (any layout naming them)."""
    out = np.full((len(poses), len(kind.features), 2), np.nan)
    for i, pose in enumerate(poses):
        index = _indices(pose.layout, kind)
        kps = [pose.keypoints[j] for j in index]
        out[i] = [(k.x, k.y) if k.detected else (math.nan, math.nan) for k in kps]
    return out


@functools.cache
def _indices(layout: Layout, kind: Kind) -> tuple[int, ...]:
    missing = [n for n in kind.features if n not in layout.keypoints]
    if missing:
        raise PiposerError(f"taught poses need keypoint {missing[0]!r}, which the {layout.name} layout lacks")
    return tuple(layout.index(n) for n in kind.features)


def example_points(examples: list[Example], kind: Kind = BODY) -> np.ndarray:
    """(N, F, 2) pixel positions of the examples' feature keypoints, NaN where not detected."""
    stored = np.array([[p if p is not None else (math.nan, math.nan) for p in ex.points] for ex in examples],
                      dtype=np.float64).reshape(len(examples), len(kind.stored.keypoints), 2)
    return kind.take(stored)


class PoseClassifier:
    """k nearest neighbours over taught examples of one kind (body poses or hand shapes); `scores` gives each
    pose's confidence per label.

    Examples that cannot be normalized (no shoulders, no palm) are left out (`skipped` counts them).
    """

    def __init__(self, examples: list[Example], k: int = 5, max_distance: float = 0.5, mirror: bool = True,
                 kind: Kind = BODY):
        self.kind = kind
        examples = [ex for ex in examples if ex.kind == kind.name]
        features = kind.normalize(example_points(examples, kind)) if examples else np.zeros((0, len(kind.features), 2))
        usable = np.isfinite(features[..., 0]).sum(axis=1) >= MIN_SHARED
        self.skipped = int((~usable).sum())
        self.features = features[usable]
        mirror = mirror or kind.always_mirrored
        self.mirrored = self.features[:, list(kind.mirror)] * np.array([-1.0, 1.0]) if mirror else None
        kept = [ex.label for ex, ok in zip(examples, usable) if ok]
        self.labels: tuple[str, ...] = tuple(dict.fromkeys(kept))
        self.codes = np.array([self.labels.index(label) for label in kept], dtype=np.intp)
        self.k = min(k, len(kept))
        self.max_distance = max_distance

    def distances(self, points: np.ndarray) -> np.ndarray:
        """(P, N) distances from poses (pixel positions of the kind's features) to every usable example."""
        query = self.kind.normalize(points)
        d = distances(query, self.features)
        return d if self.mirrored is None else np.fmin(d, distances(query, self.mirrored))

    def scores(self, points: np.ndarray) -> np.ndarray:
        """(P, L) confidences: the share of each pose's k nearest examples with that label and within reach."""
        return self.vote(self.distances(points))

    def vote(self, d: np.ndarray) -> np.ndarray:
        """(P, L) confidences from (P, N) distances to the examples (used by leave-one-out too)."""
        out = np.zeros((d.shape[0], len(self.labels)))
        if self.k == 0 or d.shape[0] == 0:
            return out
        nearest = np.argpartition(d, self.k - 1, axis=1)[:, :self.k]
        close = np.take_along_axis(d, nearest, axis=1) <= self.max_distance
        rows = np.repeat(np.arange(d.shape[0]), self.k)
        np.add.at(out, (rows, self.codes[nearest].ravel()), close.ravel() / self.k)
        return out


@dataclass
class _Person:
    scores: np.ndarray
    at: float
    label: int | None = None


@dataclass(frozen=True)
class LabelChange:
    """A person's label changed (None: no label, or the person left)."""

    person: int
    label: str | None
    previous: str | None
    confidence: float


class Labeller:
    """Per person (track id): confidences smoothed exponentially over `smooth` seconds, and a label that
    is given when its confidence reaches `enter` and dropped below `release`, so it does not flicker.

    A new person starts with no confidence in anything, so one odd frame cannot label them. Untracked
    poses (no id) have no history: their label is the best raw one reaching `enter`. A person not seen
    for `forget` seconds is dropped, and loses their label.
    """

    def __init__(self, labels: tuple[str, ...], smooth: float, enter: float, release: float, forget: float = 2.0):
        self.labels = labels
        self.smooth, self.enter, self.release, self.forget = smooth, enter, release, forget
        self.people: dict[int, _Person] = {}

    def update(self, keys: list[int | None], raw: np.ndarray, now: float) -> tuple[list[tuple[str | None, float]], list[LabelChange]]:
        """Each pose's (label, confidence) and the label changes this frame."""
        results, changes = [], []
        for key, scores in zip(keys, raw):
            if key is None:
                best = int(np.argmax(scores)) if len(scores) else None
                ok = best is not None and scores[best] >= self.enter
                results.append((self.labels[best], float(scores[best])) if ok else (None, 0.0))
                continue
            person = self.people.get(key)
            if person is None:  # a new person starts from nothing: a label needs several frames to appear
                person = self.people[key] = _Person(np.zeros_like(scores) if self.smooth else scores.copy(), now)
            alpha = 1.0 if self.smooth == 0 else 1.0 - math.exp(-max(now - person.at, 0.0) / self.smooth)
            person.scores += alpha * (scores - person.scores)
            person.at = now
            previous = person.label
            self._decide(person)
            if person.label != previous:
                changes.append(self._change(key, person, previous))
            label = person.label
            results.append((self.labels[label], float(person.scores[label])) if label is not None else (None, 0.0))
        for key in [k for k, p in self.people.items() if now - p.at > self.forget]:
            person = self.people.pop(key)
            if person.label is not None:
                changes.append(LabelChange(key, None, self.labels[person.label], 0.0))
        return results, changes

    def _decide(self, person: _Person) -> None:
        s = person.scores
        if person.label is not None and s[person.label] < self.release:
            person.label = None
        best = int(np.argmax(s)) if len(s) else None
        if best is not None and best != person.label and s[best] >= self.enter and (
                person.label is None or s[best] > s[person.label]):
            person.label = best

    def _change(self, key: int, person: _Person, previous: int | None) -> LabelChange:
        label = person.label
        return LabelChange(key, None if label is None else self.labels[label],
                           None if previous is None else self.labels[previous],
                           0.0 if label is None else round(float(person.scores[label]), 3))


class PoseStage:
    """The pipeline stage between tracker and sinks: sets `label` and `label_confidence` on every pose (body
    poses from the taught poses, hands from the taught hand shapes) and emits a `pose` event when a tracked
    person's or hand's label changes (a hand's event names its `hand`, left or right).

    The poses file is checked for changes every `reload_every` seconds and re-read when it changed (a
    pose taught while the appliance runs is used at once); a file that turns bad keeps the last good one.
    """

    name = "classify"

    def __init__(self, settings: PoseSettings, emit: Callable[..., object] | None = None, reload_every: float = 1.0):
        self.settings = settings
        self.path = Path(settings.file)
        self.emit = emit
        self.reload_every = reload_every
        self._checked = -math.inf
        self._stamp: tuple | None = None
        self._load(PoseLibrary.load(self.path))

    def _load(self, library: PoseLibrary) -> None:
        s = self.settings
        self.classifiers = {kind: PoseClassifier(library.examples, s.k, s.max_distance, s.mirror, kind)
                            for kind in (BODY, HAND)}
        self.labellers = {kind: Labeller(c.labels, s.smooth, s.enter, s.release) for kind, c in self.classifiers.items()}
        self._stamp = _stamp(self.path)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every taught label, body poses first."""
        return tuple(label for c in self.classifiers.values() for label in c.labels)

    def _maybe_reload(self, now: float) -> None:
        if now - self._checked < self.reload_every:
            return
        self._checked = now
        if _stamp(self.path) == self._stamp:
            return
        try:
            self._load(PoseLibrary.load(self.path))
            log.info("taught poses reloaded from %s: %s", self.path, ", ".join(self.labels) or "none")
        except PiposerError as exc:
            self._stamp = _stamp(self.path)
            log.error("taught poses not reloaded, keeping the previous ones: %s", exc)

    def update(self, poses: list[Pose], now: float) -> list[Pose]:
        self._maybe_reload(now)
        for kind, classifier in self.classifiers.items():
            mine = [p for p in poses if kind_of(p) is kind]
            raw = classifier.scores(pose_points(mine, kind))
            results, changes = self.labellers[kind].update([p.track_id for p in mine], raw, now)
            for pose, (label, confidence) in zip(mine, results):
                pose.label, pose.label_confidence = label, round(confidence, 3)
            if self.emit is not None and changes:
                sides = {p.track_id: p.handedness for p in mine} if kind is HAND else {}
                for c in changes:
                    hand = {"hand": sides.get(c.person)} if kind is HAND else {}
                    self.emit(EventKind.POSE, person=c.person, label=c.label, previous=c.previous,
                              confidence=c.confidence, **hand)
        return poses


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def pose_stage(settings: PoseSettings, emit: Callable[..., object] | None = None) -> PoseStage | None:
    """The classifier stage when a poses file exists (a bad one is a ConfigError), else None."""
    if not settings.file or not Path(settings.file).is_file():
        return None
    return PoseStage(settings, emit)
