"""SSD box decoding for MediaPipe's detectors (BlazePose's person, the palm): anchors, box + keypoint decoding, weighted NMS.

Everything works on normalized [0, 1] coordinates of the detector's square input and on whole
arrays at once. The constants are those of MediaPipe's pose and palm detection graphs
(pose_detection_cpu, palm_detection_cpu).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorSpec:
    """How SSD anchors are laid out: one square grid per distinct stride, two anchors per layer in each cell."""

    input_size: int = 224
    strides: tuple[int, ...] = (8, 16, 32, 32, 32)
    offset: float = 0.5


POSE_DETECTOR_ANCHORS = AnchorSpec()
PALM_DETECTOR_ANCHORS = AnchorSpec(input_size=192, strides=(8, 16, 16, 16))


def ssd_anchors(spec: AnchorSpec = POSE_DETECTOR_ANCHORS) -> np.ndarray:
    """Anchor centres (N, 2) as x, y in [0, 1], in the order the detector's outputs use.

    Each layer contributes two anchors per cell (aspect ratio 1 and the interpolated scale); layers
    that share a stride share one grid, so their anchors sit together in each cell. With fixed anchor
    size every anchor is 1 x 1, so only the centres matter.
    """
    grids = []
    strides = np.asarray(spec.strides)
    for stride in dict.fromkeys(spec.strides):
        per_cell = 2 * int((strides == stride).sum())
        cells = int(np.ceil(spec.input_size / stride))
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + spec.offset) / cells
        grids.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(grids).astype(np.float32)


@dataclass
class Detections:
    """Decoded detections: boxes (N, 4) as x0, y0, x1, y1, keypoints (N, K, 2) as x, y, scores (N,)."""

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, index) -> Detections:
        return Detections(self.boxes[index], self.keypoints[index], self.scores[index])


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, written with tanh so large logits never overflow."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, input_size: int,
           min_score: float, score_clip: float = 100.0) -> Detections:
    """Turn raw regressors (N, 4 + 2K) and score logits (N, 1) into detections scoring >= `min_score`.

    Box centre and keypoints are offsets from the anchor centre in input pixels; width and height are
    in input pixels too (anchors are 1 x 1).
    """
    scores = sigmoid(np.clip(raw_scores.reshape(-1), -score_clip, score_clip))
    keep = np.flatnonzero(scores >= min_score)
    raw = raw_boxes[keep].reshape(len(keep), raw_boxes.shape[1] // 2, 2) / input_size
    anchor = anchors[keep]
    centre = raw[:, 0] + anchor
    half = raw[:, 1] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return Detections(boxes, raw[:, 2:] + anchor[:, None, :], scores[keep])


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with many (N, 4)."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(dets: Detections, threshold: float = 0.3, max_count: int | None = None) -> Detections:
    """Weighted non-max suppression: each kept detection is the score-weighted mean of its cluster.

    Clusters form around the best remaining detection from everything overlapping it by more than
    `threshold` IoU; the cluster keeps its best score. This is steadier than plain NMS between frames.
    """
    order = np.argsort(-dets.scores, kind="stable")
    boxes, points, scores = [], [], []
    while order.size and (max_count is None or len(scores) < max_count):
        overlap = iou(dets.boxes[order[0]], dets.boxes[order])
        overlap[0] = np.inf  # the best one always leads its cluster, even with a degenerate box
        cluster = order[overlap > threshold]
        order = order[overlap <= threshold]
        weights = dets.scores[cluster]
        weights = weights / weights.sum()
        boxes.append(weights @ dets.boxes[cluster])
        points.append(np.tensordot(weights, dets.keypoints[cluster], axes=1))
        scores.append(dets.scores[cluster[0]])
    if not scores:
        return dets.take(slice(0, 0))
    return Detections(np.stack(boxes), np.stack(points), np.asarray(scores, dtype=np.float32))


def remove_letterbox(dets: Detections, padding: tuple[float, float]) -> Detections:
    """Map detections from the letterboxed square input back to the image, both normalized.

    `padding` is the normalized (x, y) border on each side that letterboxing added.
    """
    pad = np.asarray(padding, dtype=np.float32)
    span = 1.0 - 2.0 * pad
    boxes = (dets.boxes - np.tile(pad, 2)) / np.tile(span, 2)
    return Detections(boxes, (dets.keypoints - pad) / span, dets.scores)
