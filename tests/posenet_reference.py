"""A plain-Python, loop-by-loop rendering of PoseNet's published multi-pose decoder.

It exists only to check the vectorized decoder: same inputs, same poses. It follows the
algorithm as tfjs-models describes it (priority queue of local-maximum parts, NMS on roots,
backward-then-forward traversal, non-overlap instance score), written independently.
"""

from __future__ import annotations

import heapq
import math

from piposer.estimators.posenet_decoder import EDGES

NUM_PARTS = 17


def _round(v: float) -> int:  # JavaScript's Math.round: halves go up
    return math.floor(v + 0.5)


def _near(point, stride, h, w):
    y, x = point
    return min(max(_round(y / stride), 0), h - 1), min(max(_round(x / stride), 0), w - 1)


def _offset(offsets, cy, cx, part):
    return float(offsets[cy, cx, part]), float(offsets[cy, cx, part + NUM_PARTS])


def _traverse(edge, source, target, scores, offsets, stride, displacements):
    h, w, _ = scores.shape
    cy, cx = _near(source, stride, h, w)
    n_edges = displacements.shape[2] // 2
    point = (source[0] + float(displacements[cy, cx, edge]), source[1] + float(displacements[cy, cx, n_edges + edge]))
    for _ in range(2):
        cy, cx = _near(point, stride, h, w)
        oy, ox = _offset(offsets, cy, cx, target)
        point = (cy * stride + oy, cx * stride + ox)
    cy, cx = _near(point, stride, h, w)
    return point, float(scores[cy, cx, target])


def _decode_pose(root_score, root_y, root_x, root_part, scores, offsets, stride, fwd, bwd):
    points = [None] * NUM_PARTS
    part_scores = [0.0] * NUM_PARTS
    oy, ox = _offset(offsets, root_y, root_x, root_part)
    points[root_part] = (root_y * stride + oy, root_x * stride + ox)
    part_scores[root_part] = root_score
    for edge in range(len(EDGES) - 1, -1, -1):
        parent, child = (int(v) for v in EDGES[edge])
        if points[child] is not None and points[parent] is None:
            points[parent], part_scores[parent] = _traverse(edge, points[child], parent, scores, offsets, stride, bwd)
    for edge in range(len(EDGES)):
        parent, child = (int(v) for v in EDGES[edge])
        if points[parent] is not None and points[child] is None:
            points[child], part_scores[child] = _traverse(edge, points[parent], child, scores, offsets, stride, fwd)
    return points, part_scores


def _near_existing(poses, sq_radius, point, part):
    return any((p[0][part][0] - point[0]) ** 2 + (p[0][part][1] - point[1]) ** 2 <= sq_radius for p in poses)


def decode_multiple_reference(scores, offsets, fwd, bwd, stride, score_threshold, nms_radius, max_poses):
    """Returns a list of (points, part_scores, pose_score); points are (y, x) per part."""
    h, w, k = scores.shape
    queue = []
    for y in range(h):
        for x in range(w):
            for part in range(k):
                s = float(scores[y, x, part])
                if s < score_threshold:
                    continue
                window = scores[max(y - 1, 0):min(y + 2, h), max(x - 1, 0):min(x + 2, w), part]
                if (window > scores[y, x, part]).any():
                    continue
                # max-heap on score; ties in row-major scan order
                heapq.heappush(queue, (-s, len(queue), y, x, part))
    sq = nms_radius ** 2
    poses = []
    while len(poses) < max_poses and queue:
        neg, _, y, x, part = heapq.heappop(queue)
        oy, ox = _offset(offsets, y, x, part)
        if _near_existing(poses, sq, (y * stride + oy, x * stride + ox), part):
            continue
        points, part_scores = _decode_pose(-neg, y, x, part, scores, offsets, stride, fwd, bwd)
        free = sum(s for i, (p, s) in enumerate(zip(points, part_scores)) if not _near_existing(poses, sq, p, i))
        poses.append((points, part_scores, free / k))
    return poses
