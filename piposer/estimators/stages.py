"""Pieces MediaPipe-style two-stage estimators share (BlazePose, hands): tensor lookup, input filling, stage timing,
and the SSD detector that finds what the landmark model then looks at."""

from __future__ import annotations

import time

import cv2
import numpy as np

from ..backend import Model, Tensor
from ..errors import PiposerError
from .roi import crop, letterbox_padding, letterbox_roi
from .ssd import AnchorSpec, Detections, decode, remove_letterbox, ssd_anchors, weighted_nms

NMS_THRESHOLD = 0.3  # IoU above which detections merge (both of MediaPipe's detector graphs)


def _shapes(tensors: list[Tensor]) -> str:
    return ", ".join(str(list(t.shape)) for t in tensors)


def find_tensors(model: Model, input_size: int, outputs: dict[str, tuple[int, ...]], what: str,
                 by_order: bool = False) -> dict[str, Tensor]:
    """Check the model's input size and find its outputs by shape (in file order among equal shapes when
    `by_order`); anything else is a clear error naming the file."""
    if by_order:
        found = dict(zip(outputs, model.outputs)) if len(model.outputs) == len(outputs) else {}
        if any(found[name].shape != shape for name, shape in outputs.items() if name in found):
            found = {}
    else:
        found = {name: next((t for t in model.outputs if t.shape == shape), None) for name, shape in outputs.items()}
    if len(found) != len(outputs) or None in found.values() \
            or [t.shape for t in model.inputs] != [(1, input_size, input_size, 3)]:
        raise PiposerError(
            f"model {model.path} is not a {what}: expected input [1, {input_size}, {input_size}, 3] and outputs "
            f"{', '.join(str(list(s)) for s in outputs.values())}; it has input {_shapes(model.inputs)}, "
            f"outputs {_shapes(model.outputs)}")
    return found


def to_input(patch: np.ndarray, buffer: np.ndarray, scale: float, offset: float) -> None:
    """Fill a float32 model-input buffer (1, H, W, 3) with a BGR uint8 crop as RGB x scale + offset."""
    np.multiply(cv2.cvtColor(patch, cv2.COLOR_BGR2RGB), np.float32(scale), out=buffer[0])
    if offset:
        buffer += np.float32(offset)


class Stopwatch:
    """Adds the time since the last lap to a named stage: `timings` for `piposer bench` and the app's stats."""

    def __init__(self):
        self.timings = {"preprocess": 0.0, "invoke": 0.0, "decode": 0.0}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] += now - self.last
        self.last = now


class SsdDetector:
    """A MediaPipe SSD detector: the letterboxed frame in, boxes and keypoints in image pixels out, best first.

    `value_range` is what the model wants pixel values mapped to: (-1, 1) for BlazePose's, (0, 1) for the palm's.
    """

    def __init__(self, path, num_threads: int, anchors: AnchorSpec, num_keypoints: int,
                 value_range: tuple[float, float], what: str):
        self.model = Model(path, num_threads)
        self.anchors = ssd_anchors(anchors)
        self.size = anchors.input_size
        low, high = value_range
        self.scale, self.offset = (high - low) / 255, low
        n = len(self.anchors)
        self.tensors = find_tensors(self.model, self.size, {"boxes": (1, n, 4 + 2 * num_keypoints),
                                                            "scores": (1, n, 1)}, what)

    def detect(self, image: np.ndarray, mirror: bool, min_score: float, max_count: int,
               clock: Stopwatch) -> Detections:
        """Up to `max_count` detections scoring `min_score` or more, merged by weighted NMS, in image pixels."""
        height, width = image.shape[:2]
        patch = crop(image, letterbox_roi(width, height), self.size, mirror, cv2.BORDER_CONSTANT)
        to_input(patch, self.model.input_buffer(), self.scale, self.offset)
        clock.lap("preprocess")
        self.model.invoke()
        clock.lap("invoke")
        dets = decode(self.model.output(self.tensors["boxes"]), self.model.output(self.tensors["scores"]),
                      self.anchors, self.size, min_score)
        dets = remove_letterbox(weighted_nms(dets, NMS_THRESHOLD, max_count), letterbox_padding(width, height))
        pixels = np.array([width, height], dtype=np.float32)
        clock.lap("decode")
        return Detections(dets.boxes * np.tile(pixels, 2), dets.keypoints * pixels, dets.scores)
