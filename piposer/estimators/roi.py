"""Rotated square regions of interest: built from two alignment points, cropped out with one affine warp
(`crop`), or, upright, with one resize onto a grid of whole pixels (`fit`, MoveNet's).

A `Roi` maps the model's square input onto the image: input corner (0, 0) lands on the ROI's
top-left corner, (size, size) on its bottom-right, as MediaPipe's image-to-tensor step does with
OpenCV, so landmarks come back through the very same matrix the crop used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Roi:
    """A square region in image pixels: centre, side length, and rotation in radians.

    Rotation turns the ROI's up axis: a point `p` of the ROI (relative to its centre, in the ROI's
    own upright frame) lands at `centre + R(rotation) @ p` in the image (y pointing down).
    """

    cx: float
    cy: float
    size: float
    rotation: float = 0.0

    def to_image(self, input_size: int) -> np.ndarray:
        """The 2x3 affine matrix from model-input pixels (0..input_size) to image pixels."""
        k = self.size / input_size
        c, s = math.cos(self.rotation) * k, math.sin(self.rotation) * k
        half = input_size / 2
        return np.array([[c, -s, self.cx - (c - s) * half], [s, c, self.cy - (s + c) * half]])

    def project(self, points: np.ndarray, input_size: int) -> np.ndarray:
        """Model-input pixel positions (N, 2) to image pixels (N, 2)."""
        m = self.to_image(input_size)
        return points @ m[:, :2].T + m[:, 2]

    def rotate(self, vectors: np.ndarray) -> np.ndarray:
        """Turn (N, 2) vectors from the ROI's upright frame into the image frame (no scaling)."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        return vectors @ np.array([[c, s], [-s, c]])


def normalize_angle(angle: float) -> float:
    """An angle folded into [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_towards(start: np.ndarray, end: np.ndarray) -> float:
    """The ROI rotation that turns the direction from `start` to `end` (pixels) to straight up."""
    dx, dy = np.asarray(end, dtype=np.float64) - np.asarray(start, dtype=np.float64)
    return normalize_angle(math.pi / 2 - math.atan2(-dy, dx))


def roi_from_alignment(centre: np.ndarray, scale_point: np.ndarray, scale: float = 1.25) -> Roi:
    """The ROI MediaPipe derives from two alignment points (pixels): a body centre and a point past the head.

    The side is twice their distance, grown by `scale` for the margin the model was trained with,
    and the rotation turns the centre-to-scale-point direction to straight up.
    """
    side = 2.0 * float(np.linalg.norm(np.asarray(scale_point, np.float64) - np.asarray(centre, np.float64)))
    return Roi(float(centre[0]), float(centre[1]), side * scale, rotation_towards(centre, scale_point))


def roi_from_rect(cx: float, cy: float, width: float, height: float, rotation: float, scale: float,
                  shift_y: float = 0.0) -> Roi:
    """A rotated rectangle (pixels) made a square ROI as MediaPipe's rect transformation does: moved by
    `shift_y` of its height along its own up axis, its long side grown by `scale`."""
    s, c = math.sin(rotation), math.cos(rotation)
    return Roi(cx - height * shift_y * s, cy + height * shift_y * c, max(width, height) * scale, rotation)


def upright_rect(points: np.ndarray, rotation: float) -> tuple[float, float, float, float]:
    """Centre (image pixels), width and height of the tightest rectangle turned by `rotation` around (N, 2) points."""
    mid = (points.min(axis=0) + points.max(axis=0)) / 2
    upright = Roi(0.0, 0.0, 0.0, -rotation).rotate(points - mid)
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    centre = Roi(0.0, 0.0, 0.0, rotation).rotate(((lo + hi) / 2)[None])[0] + mid
    width, height = hi - lo
    return float(centre[0]), float(centre[1]), float(width), float(height)


def letterbox_roi(width: int, height: int) -> Roi:
    """The whole image as a square ROI around its centre: cropping it letterboxes the image."""
    return Roi(width / 2, height / 2, float(max(width, height)))


def letterbox_padding(width: int, height: int) -> tuple[float, float]:
    """The normalized border (x, y) on each side that `letterbox_roi` adds."""
    side = max(width, height)
    return (side - width) / (2 * side), (side - height) / (2 * side)


def mirror_matrix(width: int) -> np.ndarray:
    """2x3 affine matrix from mirrored-image pixels to source-image pixels (a horizontal flip)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine matrix doing `inner` then `outer`."""
    return outer[:, :2] @ inner + np.hstack([np.zeros((2, 2)), outer[:, 2:]])


def crop(image: np.ndarray, roi: Roi, input_size: int, mirror: bool = False,
         border: int = cv2.BORDER_REPLICATE, perspective: bool = False) -> np.ndarray:
    """Warp the ROI of `image` into an `input_size` square (bilinear); `mirror` flips the image first.

    `perspective` samples as MediaPipe's image-to-tensor step does (OpenCV's perspective warp, whose per-pixel
    rounding to 1/32 pixel differs from the affine warp's fixed-point steps): a model fed its own output back
    frame after frame, like the hand tracker, amplifies even that difference.
    """
    matrix = roi.to_image(input_size)
    if mirror:
        matrix = compose(mirror_matrix(image.shape[1]), matrix)
    flags, size = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, (input_size, input_size)
    if perspective:
        return cv2.warpPerspective(image, np.vstack([matrix, [0.0, 0.0, 1.0]]), size, flags=flags,
                                   borderMode=border, borderValue=0)
    return cv2.warpAffine(image, matrix, size, flags=flags, borderMode=border, borderValue=0)


def shrink(image: np.ndarray, roi: Roi, input_size: int) -> tuple[np.ndarray, Roi]:
    """The part of the image an upright ROI covers, halved while the ROI is over twice `input_size`, and the ROI
    in that part's pixels: the bilinear crop after it never skips pixels, and the work follows the ROI's area,
    not the frame's. Halvings are 2x2 means (OpenCV's fastest downscale) except the last, a Gaussian pyramid
    step, whose smoother result keeps MoveNet's scores as they were (a box filter there cost a weak person 0.03)."""
    if roi.rotation:
        return image, roi
    while roi.size > 2 * input_size and min(image.shape[:2]) > 1:
        half = roi.size / 2
        x0, y0 = max(0, math.floor(roi.cx - half)), max(0, math.floor(roi.cy - half))
        x1, y1 = min(image.shape[1], math.ceil(roi.cx + half) + 2), min(image.shape[0], math.ceil(roi.cy + half) + 2)
        x1, y1 = x0 + max(2, (x1 - x0) // 2 * 2), y0 + max(2, (y1 - y0) // 2 * 2)
        part = image[y0:y1, x0:x1]
        if roi.size <= 4 * input_size:  # the last halving: a Gaussian pyramid step, pixel i of the half at 2i
            image, shift = cv2.pyrDown(part), 0.0
        else:  # bilinear at exactly half is the 2x2 mean, pixel i of the half at 2i + 0.5
            image = cv2.resize(part, (part.shape[1] // 2, part.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
            shift = 0.5
        roi = Roi((roi.cx - x0 - shift) / 2, (roi.cy - y0 - shift) / 2, roi.size / 2)
    return image, roi


@dataclass(frozen=True)
class Grid:
    """Where an upright crop's input pixels were sampled: input pixel (i, j) is image pixel (x0 + i * sx,
    y0 + j * sy). Snapping to whole pixels leaves the two scales a rounding apart, so a Grid, not a Roi."""

    x0: float
    y0: float
    sx: float
    sy: float

    def project(self, points: np.ndarray, input_size: int = 1) -> np.ndarray:
        """Model-input positions (..., 2), in pixels or in `input_size`ths of the input, to image pixels."""
        return points * (self.sx * input_size, self.sy * input_size) + (self.x0, self.y0)


def snap(start: float, size: float, length: int, input_size: int) -> tuple[int, int, int, int]:
    """One axis of an upright ROI snapped to whole pixels: the image pixels [a, b) of a `length` axis that the
    ROI from `start` (pixel edges) over `size` covers, and the input pixels [p, q) they fill."""
    k = size / input_size
    a, b = max(0, round(start)), min(length, round(start + size))
    p, q = max(0, round((a - start) / k)), min(input_size, round((b - start) / k))
    return a, b, p, max(p, q)


def fit(image: np.ndarray, roi: Roi, out: np.ndarray, mirror: bool = False) -> Grid:
    """Crop an upright ROI of `image` into the square `out` (zero where it leaves the image) and return the grid
    it was sampled on. The ROI is shrunk (see `shrink`), snapped to whole pixels, and resized bilinearly in one
    call straight into `out` (a quarter of the time of `crop`'s warp), and the grid carries the snapping, so
    projecting back is exact. `mirror`: the ROI, and the grid returned, are in the horizontally mirrored
    image's pixels."""
    width, side = image.shape[1], out.shape[0]
    if mirror:
        roi = Roi(width - roi.cx, roi.cy, roi.size)
    small, inner = shrink(image, roi, side)
    f = roi.size / inner.size  # small-image pixel u is image pixel f * u + (ox, oy); Python floats, not numpy:
    ox, oy = roi.cx - f * inner.cx, roi.cy - f * inner.cy  # a dozen tiny numpy steps cost more than the resize
    edge = inner.size / 2 - 0.5 + 0.5 / f  # the ROI's edges are pixel edges: pixel index - 0.5 in the image
    ax, bx, px, qx = snap(inner.cx - edge, inner.size, small.shape[1], side)
    ay, by, py, qy = snap(inner.cy - edge, inner.size, small.shape[0], side)
    out[:py], out[qy:] = 0, 0
    if px or qx < side:  # a letterbox has black on two sides only: each numpy step counts here (see make_pose)
        out[py:qy, :px], out[py:qy, qx:] = 0, 0
    if qx > px and qy > py:
        part = small[ay:by, ax:bx]
        if mirror:
            cv2.flip(cv2.resize(part, (qx - px, qy - py), interpolation=cv2.INTER_LINEAR), 1,
                     dst=out[py:qy, side - qx:side - px])
        else:
            cv2.resize(part, (qx - px, qy - py), dst=out[py:qy, px:qx], interpolation=cv2.INTER_LINEAR)
    sx, sy = f * (bx - ax) / max(1, qx - px), f * (by - ay) / max(1, qy - py)
    x0, y0 = f * (ax - 0.5) + (0.5 - px) * sx + ox, f * (ay - 0.5) + (0.5 - py) * sy + oy
    return Grid(width - 1 - x0 - (side - 1) * sx if mirror else x0, y0, sx, sy)


def paste(values: np.ndarray, roi: Roi, image_size: tuple[int, int]) -> np.ndarray:
    """Warp a square model-input map (e.g. a mask) back onto a `width, height` image, zero outside the ROI."""
    matrix = roi.to_image(values.shape[0])
    return cv2.warpAffine(values, matrix, image_size, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
