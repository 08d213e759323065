"""A second, closer look for small people in wide frames: where people are likely but were not found well,
crops of the frame run through the same model again at `zoom` times the first pass's resolution.

Where to look: around the first pass's small weak poses (scoring under the loop's cut) and, on video,
where the second pass found people in the previous frame and (if asked) where something moves (MOG2
background subtraction on a grey quarter-size copy: for a camera that stays still), minus the people
found well. The regions are merged into at most `max_crops` rectangles, and the cost follows their area:
nothing when nobody is small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..types import Frame, Pose, make_pose
from .tiles import distinct

WEAK_SCORE = 0.3  # the loop's default min_pose_score: poses under it are not passed on, so are looked at again
QUARTER = 4  # where to look is worked out on a copy this many times smaller
MOTION_WARMUP = 10  # frames the background model learns before its foreground is used
MOTION_MAX_SHARE = 0.3  # more foreground than this is a camera move or a new scene, not people: ignored
MIN_BLOB = 12  # quarter-size pixels: smaller motion blobs are noise
GROW = 0.25  # boxes grow by this share of their size each way (limbs outside the box, a step since last frame)
MIN_INPUT = 97  # px: crops are made at least this large at the model's input (context around a small person)
GRID = 32  # px at the input: crop sizes are rounded up to this
SMALL_INPUT = 48  # px: weak poses larger than this at the first pass's input are not weak for want of pixels


@dataclass(frozen=True)
class Crop:
    """A rectangle of the frame in pixels (x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def union(self, other: Crop) -> Crop:
        return Crop(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))


class MotionMap:
    """Which quarter-size pixels move: OpenCV's MOG2 on a grey copy; None while learning or after a cut."""

    def __init__(self):
        self.subtractor = None
        self.shape: tuple[int, int] | None = None
        self.seen = 0

    def update(self, image: np.ndarray) -> np.ndarray | None:
        h, w = image.shape[:2]
        if self.shape != (h, w):  # a new source: start learning again
            self.subtractor = cv2.createBackgroundSubtractorMOG2(history=100, detectShadows=False)
            self.shape, self.seen = (h, w), 0
        small = cv2.resize(image, (w // QUARTER, h // QUARTER), interpolation=cv2.INTER_AREA)
        moving = self.subtractor.apply(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        self.seen += 1
        if self.seen <= MOTION_WARMUP or np.count_nonzero(moving) > MOTION_MAX_SHARE * moving.size:
            return None
        return cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))  # edges a shaking camera lights


def blobs(mask: np.ndarray) -> list[Crop]:
    """Rectangles around the mask's blobs of at least MIN_BLOB pixels, fragments of one person joined first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(mask, np.ones((5, 5), np.uint8)))
    area = np.bincount(labels[mask > 0], minlength=count)
    return [Crop(x, y, x + w, y + h) for (x, y, w, h, _), a in zip(stats[1:].tolist(), area[1:]) if a >= MIN_BLOB]


def merge(crops: list[Crop], max_crops: int, overhead: int) -> list[Crop]:
    """Join rectangles while joining two costs less area than `overhead` (a model pass's fixed cost, in pixels)
    more than keeping them apart, then until at most `max_crops` are left (cheapest join first)."""
    crops = list(crops)
    while len(crops) > 1:
        best, pair = None, None
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                extra = crops[i].union(crops[j]).area - crops[i].area - crops[j].area
                if best is None or extra < best:
                    best, pair = extra, (i, j)
        if best > overhead and len(crops) <= max_crops:
            break
        i, j = pair
        crops[i] = crops[i].union(crops.pop(j))
    return crops


def recentred(crop: Crop, w: float, h: float, width: int, height: int) -> Crop:
    """A `w` x `h` rectangle on the crop's centre, moved (and cut, if larger) to lie inside the frame."""
    def span(lo, hi, size, limit):
        size = min(limit, size)
        lo = min(max(0.0, (lo + hi - size) / 2), limit - size)
        return int(lo), int(lo + size)
    (x0, x1), (y0, y1) = span(crop.x0, crop.x1, w, width), span(crop.y0, crop.y1, h, height)
    return Crop(x0, y0, x1, y1)


def grown(crop: Crop, width: int, height: int, least: float) -> Crop:
    """The crop grown to at least `least` pixels a side, inside the frame."""
    return recentred(crop, max(crop.x1 - crop.x0, least), max(crop.y1 - crop.y0, least), width, height)


def on_grid(crop: Crop, width: int, height: int, scale: float, grid: int) -> Crop:
    """The crop grown until both sides at `scale` are a multiple of `grid` plus one (so sizes repeat)."""
    def size(n):
        return (np.ceil((n * scale - 1) / grid) * grid + 1) / scale
    return recentred(crop, size(crop.x1 - crop.x0), size(crop.y1 - crop.y0), width, height)


def around(poses: list[Pose], grow: float = GROW) -> list[Crop]:
    """Pose boxes grown by `grow` of their size each way, in quarter-size pixels."""
    out = []
    for p in poses:
        b = p.box
        gx, gy = b.width * grow, b.height * grow
        out.append(Crop(*(int(v / QUARTER) for v in (b.x0 - gx, b.y0 - gy, b.x1 + gx + QUARTER, b.y1 + gy + QUARTER))))
    return out


class SecondPass:
    """Finds more people in a frame a first pass has seen at `input_side` pixels along its long side, by
    running the same model on crops at `zoom` times the resolution and merging what it finds (duplicates
    dropped as between tiles).

    Each crop (left to right) has its own copy of the estimator, made by `make()`, whose `poses_in(image,
    long_side)` gives poses in image pixels: resizing one interpreter's input from crop to crop and back
    costs more than the invoke of a small crop (XNNPACK plans again), so a copy keeps its input size while
    its crop keeps its size; crop sizes are rounded to a GRID at the input so that they do.
    """

    def __init__(self, video: bool, motion: bool, zoom: float, max_crops: int, input_side: int, stride: int,
                 make: Callable[[], object]):
        self.motion = MotionMap() if video and motion else None
        self.video = video
        self.zoom, self.max_crops, self.input_side, self.stride = zoom, max_crops, input_side, stride
        self.make = make
        self.passes: list = []
        self.crops: list[Crop] = []  # where the last frame was looked at again (for overlays and tests)
        self.seen: list[Pose] = []  # what the last frame's second pass found (on video, looked for again)

    def wanted(self, frame: Frame, poses: list[Pose], first_scale: float) -> np.ndarray | None:
        """Quarter-size mask of where small people may be but were not found well (None: nowhere)."""
        moving = self.motion.update(frame.image) if self.motion else None
        candidates = [p for p in poses if p.score < WEAK_SCORE] + self.seen
        weak = [p for p in candidates if max(p.box.width, p.box.height) * first_scale < SMALL_INPUT]
        if moving is None and not weak:
            return None
        mask = moving if moving is not None else np.zeros((frame.height // QUARTER, frame.width // QUARTER), np.uint8)
        for box in around(weak):
            cv2.rectangle(mask, (box.x0, box.y0), (box.x1, box.y1), 255, thickness=-1)
        for box in around([p for p in poses if p.score >= WEAK_SCORE], 0.0):  # found well: no need
            cv2.rectangle(mask, (box.x0, box.y0), (box.x1, box.y1), 0, thickness=-1)
        return mask

    def __call__(self, frame: Frame, poses: list[Pose], max_poses: int, keypoint_threshold: float) -> list[Pose]:
        for estimator in self.passes:
            estimator.timings = {}
        long = max(frame.width, frame.height)
        scale = min(1.0, self.input_side * self.zoom / long)  # never more pixels than the frame has
        self.crops = []
        if scale < 1.2 * self.input_side / long:  # the frame is not wide enough for a closer look to see more
            return poses
        least = MIN_INPUT / scale
        mask = self.wanted(frame, poses, self.input_side / long)
        found_in = blobs(mask) if mask is not None else []
        regions = [Crop(*(QUARTER * v for v in (b.x0, b.y0, b.x1, b.y1))) for b in found_in]
        regions = [grown(c, frame.width, frame.height, least) for c in regions]
        merged = sorted(merge(regions, self.max_crops, int(least * least)), key=lambda c: (c.x0, c.y0))
        self.crops = [on_grid(c, frame.width, frame.height, scale, GRID) for c in merged]
        while len(self.passes) < len(self.crops):
            self.passes.append(self.make())
        found = list(poses)
        size = (frame.width, frame.height)
        for c, estimator in zip(self.crops, self.passes):
            side = int(np.ceil((max(c.x1 - c.x0, c.y1 - c.y0) * scale - 1) / self.stride)) * self.stride + 1
            for p in estimator.poses_in(frame.image[c.y0:c.y1, c.x0:c.x1], side):
                found.append(make_pose(p.layout, p.xy() + (c.x0, c.y0), p.scores(), size, keypoint_threshold, p.score))
        if len(found) > len(poses):
            boxes = np.array([(p.box.x0, p.box.y0, p.box.x1, p.box.y1) for p in found])
            found = [found[i] for i in distinct(boxes, np.array([p.score for p in found]))[:max_poses]]
        if self.video:
            first = set(map(id, poses))
            self.seen = [p for p in found if id(p) not in first and p.score >= WEAK_SCORE]
        return found

    def close(self) -> None:
        for estimator in self.passes:
            estimator.close()
        self.passes = []
