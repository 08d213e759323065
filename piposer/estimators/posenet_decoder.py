"""PoseNet's output decoding in vectorized numpy: single-pose (argmax) and multi-pose (the published algorithm).

Multi-pose follows PoseNet's greedy decoder: part candidates are local maxima of the heatmap
scores above a threshold; candidates are taken in score order; a candidate within `nms_radius` of
the same part of an accepted pose is skipped; a pose is assembled from its root along the 16-edge
tree with the forward/backward displacements and two offset refinement steps; its score is the
mean of the keypoint scores that do not overlap earlier poses.

Every candidate's pose is independent of the others, so all candidates are decoded at once, one
tree level ("wave") at a time; only the cheap acceptance scan is sequential, once per accepted pose.
All positions are (y, x) in model-input pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# PoseNet's 16-edge tree over COCO-17 parts as (parent, child); index = displacement channel.
EDGES = np.array([
    (0, 1), (1, 3), (0, 2), (2, 4), (0, 5), (5, 7), (7, 9), (5, 11),
    (11, 13), (13, 15), (0, 6), (6, 8), (8, 10), (6, 12), (12, 14), (14, 16),
])
NUM_PARTS = 17
LOCAL_MAXIMUM_RADIUS = 1
REFINE_STEPS = 2


@dataclass(frozen=True)
class Decoded:
    """Decoder output: P poses with (P, 17, 2) keypoint (y, x) positions, (P, 17) scores and (P,) pose scores."""

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray


def _traversal_plan() -> np.ndarray:
    """For every root part, the 16 steps that reach the other parts: rows (root, wave, source, target, edge, backward).

    Wave is the target's tree distance from the root; a step along an edge towards the parent uses
    the backward displacements. Sorted by (root, wave).
    """
    neighbours: dict[int, list[tuple[int, int, int]]] = {p: [] for p in range(NUM_PARTS)}
    for edge, (parent, child) in enumerate(EDGES):
        neighbours[parent].append((child, edge, 0))
        neighbours[child].append((parent, edge, 1))
    rows = []
    for root in range(NUM_PARTS):
        frontier, seen, wave = [root], {root}, 0
        while frontier:
            wave += 1
            nxt = []
            for source in frontier:
                for target, edge, backward in neighbours[source]:
                    if target not in seen:
                        seen.add(target)
                        nxt.append(target)
                        rows.append((root, wave, source, target, edge, backward))
            frontier = nxt
    return np.array(rows, dtype=np.int64)


PLAN = _traversal_plan()  # (17 * 16, 6)
MAX_WAVE = int(PLAN[:, 1].max())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def part_candidates(scores: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap cells that score at least `threshold` and are a maximum of their 3x3 window, best first.

    Returns (y, x, part, score) arrays; ties keep row-major order.
    """
    h, w, _ = scores.shape
    r = LOCAL_MAXIMUM_RADIUS
    padded = np.pad(scores, ((r, r), (r, r), (0, 0)), constant_values=-np.inf)
    neighbourhood_max = scores.copy()
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            np.maximum(neighbourhood_max, padded[dy:dy + h, dx:dx + w], out=neighbourhood_max)
    y, x, part = np.nonzero((scores >= threshold) & (scores >= neighbourhood_max))
    score = scores[y, x, part]
    order = np.argsort(-score, kind="stable")
    return y[order], x[order], part[order], score[order]


class _Grid:
    """Gathers from the output grids at the cell nearest a point, with PoseNet's rounding (half up) and clamping."""

    def __init__(self, scores, offsets, displacements_fwd, displacements_bwd, stride: int):
        h, w, k = scores.shape
        self.stride = stride
        self.limit = np.array([h - 1, w - 1])
        self.width = w
        self.scores = scores.reshape(h * w, k)
        # (cells, parts, yx) and (direction, cells, edges, yx), so one fancy index fetches a (y, x) pair.
        self.offsets = np.stack((offsets[..., :k], offsets[..., k:]), axis=-1).reshape(h * w, k, 2)
        e = displacements_fwd.shape[-1] // 2
        disp = np.stack([np.stack((d[..., :e], d[..., e:]), axis=-1) for d in (displacements_fwd, displacements_bwd)])
        self.displacements = disp.reshape(2, h * w, e, 2)

    def cell(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest grid cell (y, x) to each point, and its flat index."""
        cells = np.clip(np.floor(points / self.stride + 0.5), 0, self.limit).astype(np.int64)
        return cells, cells[:, 0] * self.width + cells[:, 1]

    def traverse(self, sources, targets, edges, backward):
        """Move from source points along edges to the target parts; returns target points and scores."""
        _, flat = self.cell(sources)
        points = sources + self.displacements[backward, flat, edges]
        for _ in range(REFINE_STEPS):
            cells, flat = self.cell(points)
            points = cells * self.stride + self.offsets[flat, targets]
        _, flat = self.cell(points)
        return points, self.scores[flat, targets]


def decode_multiple(
    heatmap_scores: np.ndarray,
    offsets: np.ndarray,
    displacements_fwd: np.ndarray,
    displacements_bwd: np.ndarray,
    stride: int,
    score_threshold: float = 0.5,
    nms_radius: float = 20.0,
    max_poses: int = 10,
) -> Decoded:
    """Multi-person decoding of one image's (H, W, C) output grids; heatmap_scores are sigmoid scores."""
    y, x, part, root_score = part_candidates(heatmap_scores, score_threshold)
    n = len(part)
    if n == 0 or max_poses <= 0:
        return Decoded(np.zeros((0, NUM_PARTS, 2)), np.zeros((0, NUM_PARTS)), np.zeros(0))
    grid = _Grid(heatmap_scores, offsets, displacements_fwd, displacements_bwd, stride)

    keypoints = np.zeros((n, NUM_PARTS, 2))
    scores = np.zeros((n, NUM_PARTS))
    rows = np.arange(n)
    flat = y * grid.width + x
    keypoints[rows, part] = np.stack((y, x), axis=1) * stride + grid.offsets[flat, part]
    scores[rows, part] = root_score

    # Each candidate's plan: the 16 steps of its root part, walked one wave at a time for all candidates.
    steps = PLAN[(part[:, None] * 16 + np.arange(16)).ravel()].reshape(n, 16, 6)
    for wave in range(1, MAX_WAVE + 1):
        cand, step = np.nonzero(steps[:, :, 1] == wave)
        if cand.size == 0:
            continue
        _, _, source, target, edge, backward = steps[cand, step].T
        keypoints[cand, target], scores[cand, target] = grid.traverse(
            keypoints[cand, source], target, edge, backward)

    return _select(keypoints, scores, part, nms_radius ** 2, max_poses)


def _select(keypoints, scores, part, squared_radius, max_poses) -> Decoded:
    """Accept candidates in score order, skipping roots near the same part of an accepted pose."""
    n = len(part)
    roots = keypoints[np.arange(n), part]
    suppressed = np.zeros(n, dtype=bool)
    accepted: list[int] = []
    instance_scores: list[float] = []
    start = 0
    while len(accepted) < max_poses:
        free = np.flatnonzero(~suppressed[start:])
        if free.size == 0:
            break
        i = start + int(free[0])
        kept = keypoints[accepted]  # (P, 17, 2) accepted so far
        overlapped = (((kept - keypoints[i]) ** 2).sum(-1) <= squared_radius).any(axis=0)
        instance_scores.append(float(scores[i][~overlapped].sum() / NUM_PARTS))
        accepted.append(i)
        suppressed[i + 1:] |= ((roots[i + 1:] - keypoints[i, part[i + 1:]]) ** 2).sum(-1) <= squared_radius
        start = i + 1
    return Decoded(keypoints[accepted], scores[accepted], np.array(instance_scores))


def decode_single(heatmap_scores: np.ndarray, offsets: np.ndarray, stride: int) -> Decoded:
    """Single-person decoding: each part at its heatmap argmax, refined by the offset there."""
    h, w, k = heatmap_scores.shape
    flat = heatmap_scores.reshape(h * w, k).argmax(axis=0)
    y, x = np.divmod(flat, w)
    parts = np.arange(k)
    points = np.stack((y, x), axis=1) * stride + np.stack((offsets[y, x, parts], offsets[y, x, parts + k]), axis=1)
    part_scores = heatmap_scores[y, x, parts]
    return Decoded(points[None], part_scores[None], np.array([part_scores.mean()]))
