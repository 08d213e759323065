"""MoveNet on TFLite: MultiPose (up to six people, one pass) and SinglePose Lightning / Thunder (one person).

The model file says which it is: MultiPose outputs per person 17 x (y, x, score) then a box and a score,
SinglePose 17 x (y, x, score). Both see a square region of the frame cropped into their fixed input
(aspect kept, black outside the frame): the whole frame letterboxed, or, for SinglePose on video, the
region Google's crop algorithm places around the previous frame's person (movenet_crop.py).
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from ..backend import Model
from ..errors import PiposerError
from ..modelstore import ModelStore
from ..types import COCO17, Frame, Pose, make_pose
from . import BaseEstimator, settings_from
from .movenet_crop import next_crop_region
from .roi import Grid, Roi, fit, letterbox_roi
from .tiles import distinct, tile_regions
from .settings import ModelSettings, MoveNetSettings

ROW = 17 * 3 + 5  # one MultiPose person's output row


class MoveNetEstimator(BaseEstimator):
    """MoveNet MultiPose or SinglePose: frame in, poses in source-image pixels out."""

    layout = COCO17

    def __init__(self, model: ModelSettings | None = None, settings: MoveNetSettings | None = None,
                 store: ModelStore | None = None):
        self.model_settings = dataclasses.replace(model) if model else ModelSettings(name="movenet-multipose")
        self.settings = settings or MoveNetSettings()
        resolved = (store or ModelStore.from_environment()).resolve(self.model_settings.name)
        self.model_name = resolved.name
        self.model = Model(resolved.path, self.model_settings.num_threads)
        shape, output = self.model.input.shape, self.model.outputs[0].shape
        self.single = output[-2:] == (17, 3)
        if len(shape) != 4 or shape[1] != shape[2] or not (self.single or output[-1] == ROW):
            raise PiposerError(f"model {resolved.path} is not MoveNet: input {list(shape)}, output {list(output)} "
                               f"(expected [1, N, N, 3] and [1, 6, {ROW}] or [1, 1, 17, 3])")
        if self.single and self.settings.tiles > 1:
            raise PiposerError(f"movenet.tiles = {self.settings.tiles} needs MoveNet MultiPose, not the SinglePose "
                               f"model {resolved.name} (it follows one person with its own crop)")
        self.side = shape[1]
        self.region: Roi | None = None  # SinglePose on video: where the next frame is cropped
        self.timings: dict[str, float] = {}

    def preprocess(self, image: np.ndarray, region: Roi) -> Grid:
        """Write the square `region` of the BGR frame (of its mirror image if flip_horizontal) into the model's
        input as RGB, and return the grid it was sampled on; centred letterboxing scored MultiPose AP 0.363 on
        coco_dev against 0.342 top-left."""
        batch = self.model.input_buffer()[0]
        grid = fit(image, region, batch, mirror=self.model_settings.flip_horizontal)
        cv2.cvtColor(batch, cv2.COLOR_BGR2RGB, dst=batch)
        return grid

    def regions(self, width: int, height: int) -> list[Roi]:
        """The squares of the frame the model runs on: SinglePose's crop region, or MultiPose's tiles."""
        if self.single:
            return [self.region or letterbox_roi(width, height)]
        return tile_regions(width, height, self.settings.tiles)

    def _estimate(self, frame: Frame) -> list[Pose]:
        timings = dict.fromkeys(("preprocess", "invoke", "decode"), 0.0)
        poses = []
        for region in self.regions(frame.width, frame.height):
            t0 = time.perf_counter()
            grid = self.preprocess(frame.image, region)
            t1 = time.perf_counter()
            self.model.invoke()
            t2 = time.perf_counter()
            poses += self.decode(self.model.output(self.model.outputs[0]), grid, frame)
            timings["preprocess"] += t1 - t0
            timings["invoke"] += t2 - t1
            timings["decode"] += time.perf_counter() - t2
        t0 = time.perf_counter()
        if self.settings.tiles > 1:
            boxes = np.array([(p.box.x0, p.box.y0, p.box.x1, p.box.y1) for p in poses]).reshape(-1, 4)
            poses = [poses[i] for i in distinct(boxes, np.array([p.score for p in poses]))]
        poses = sorted(poses, key=lambda p: -p.score)[: self.settings.max_poses]
        timings["decode"] += time.perf_counter() - t0
        self.timings = timings
        return poses

    def decode(self, output: np.ndarray, grid: Grid, frame: Frame) -> list[Pose]:
        """One pass's output -> Poses in source pixels (people under min_pose_score dropped); SinglePose on
        video also places the next frame's crop region."""
        people = output.reshape(-1, 51 if self.single else ROW)
        points = people[:, :51].reshape(-1, 17, 3)
        xy = grid.project(points[:, :, 1::-1], self.side)
        scores = [float(points[0, :, 2].sum()) / 17] if self.single else people[:, -1].tolist()
        if self.single and self.settings.running_mode == "video":
            self.region = next_crop_region(xy[0], points[0, :, 2], frame.width, frame.height)
        size, threshold = (frame.width, frame.height), self.model_settings.keypoint_threshold
        return [make_pose(COCO17, xy[i], points[i, :, 2], size, threshold, score)
                for i, score in enumerate(scores) if score >= self.settings.min_pose_score]

    def close(self) -> None:
        self.model = None


class MoveNet(MoveNetEstimator):
    """MoveNet for library users: `MoveNet()` (MultiPose), `MoveNet("movenet-thunder")` or a .tflite path,
    with any [model] or [movenet] setting as a keyword (`MoveNet(keypoint_threshold=0.4, max_poses=3)`)."""

    def __init__(self, model: str = "movenet-multipose", *, store: ModelStore | None = None, **options):
        super().__init__(*settings_from(options, ModelSettings(name=model), MoveNetSettings()), store=store)
