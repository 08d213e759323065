"""MediaPipe BlazePose on plain TFLite: person detector, ROI crop, 33-landmark model, tracking and smoothing.

The pipeline follows MediaPipe's pose landmark graph: the detector finds people and two alignment
points each (hip centre, a point past the head); a rotated square ROI around them is warped into
the landmark model, whose landmarks are projected back into the image. In video mode the next
frame's ROI comes from this frame's landmarks and the detector is skipped while the pose holds;
landmarks are smoothed with One-Euro filters tuned as in MediaPipe's pose graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..modelstore import ModelStore
from ..backend import Model
from ..smoothing import LANDMARK_FILTER, LowPassFilter, OneEuroFilter, OneEuroParams
from ..layouts import to_layout
from ..types import BLAZEPOSE33, COCO17, Frame, Pose, make_pose
from . import BaseEstimator, ModelSettings, settings_from
from .settings import BlazePoseSettings
from .roi import Roi, crop, paste, roi_from_alignment
from .ssd import POSE_DETECTOR_ANCHORS, sigmoid
from .stages import SsdDetector, Stopwatch, find_tensors, to_input

LANDMARK_SIZE = 256
ROI_SCALE = 1.25          # margin around the alignment square the landmark model was trained with
SAME_PERSON_DISTANCE = 0.1  # median landmark distance, in body sizes, below which two results are one person
SAME_ROI_DISTANCE = 0.1     # a proposed ROI this close (in ROI sides) to a found person's, and
SAME_ROI_SIZE = 1.3         # of a side within this factor, is that person again
NUM_LANDMARKS = 33        # the model also predicts 6 auxiliary points; 33 and 34 align the next ROI
HEATMAP_KERNEL = 7        # window for refining landmarks on the heatmap
HEATMAP_MIN_CONFIDENCE = 0.5

# MediaPipe's pose graph filters (pose_landmark_filtering): landmarks, the ROI alignment points
# (smoothed harder so the crop stays put), world landmarks (metres, not scaled by object size).
AUX_FILTER = OneEuroParams(min_cutoff=0.01, beta=10.0, derivate_cutoff=1.0)
WORLD_FILTER = OneEuroParams(min_cutoff=0.1, beta=40.0, derivate_cutoff=1.0)
VISIBILITY_ALPHA = 0.1


class PoseDetector:
    """The BlazePose person detector: letterboxed frame in, hip centre and scale point per person out."""

    def __init__(self, path, num_threads: int, mirror: bool, min_score: float):
        self.ssd = SsdDetector(path, num_threads, POSE_DETECTOR_ANCHORS, 4, (-1.0, 1.0), "BlazePose person detector")
        self.mirror, self.min_score = mirror, min_score

    def detect(self, image: np.ndarray, max_count: int, clock: Stopwatch) -> list[Roi]:
        """ROIs (pixels of the possibly mirrored image) of up to `max_count` people, best first."""
        points = self.ssd.detect(image, self.mirror, self.min_score, max_count, clock).keypoints
        return [roi_from_alignment(p[0], p[1], ROI_SCALE) for p in points]


@dataclass
class Landmarks:
    """One landmark-model result in image pixels: xyz (39, 3) with z scaled like x, world (33, 3) in metres."""

    xyz: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world: np.ndarray
    score: float
    mask: np.ndarray | None = None

    def alignment_roi(self, scale: float = ROI_SCALE) -> Roi:
        """The ROI for the next frame, from the auxiliary hip-centre and scale points."""
        aux = self.xyz[NUM_LANDMARKS:NUM_LANDMARKS + 2, :2]
        return roi_from_alignment(aux[0], aux[1], scale)


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """Move landmarks (L, 2, normalized to the ROI) to the sigmoid-weighted centroid of their heatmap window.

    As in MediaPipe: a 7x7 window around each landmark's heatmap cell (zero outside the map); a
    landmark moves only if its window's peak confidence reaches 0.5 and it lies on the map.
    """
    size, count = heatmap.shape[0], heatmap.shape[2]
    offsets = np.arange(HEATMAP_KERNEL) - HEATMAP_KERNEL // 2
    cells = np.trunc(xy * size).astype(int)
    # MediaPipe skips landmarks left of, right of or above the map; below it, the window just shrinks.
    inside = (cells[:, 0] >= 0) & (cells[:, 0] < size) & (cells[:, 1] >= 0)
    rows = cells[:, 1, None, None] + offsets[None, :, None]
    cols = cells[:, 0, None, None] + offsets[None, None, :]
    on_map = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    conf = sigmoid(heatmap[rows.clip(0, size - 1), cols.clip(0, size - 1), np.arange(count)[:, None, None]]) * on_map
    total = conf.sum(axis=(1, 2))
    centroid = cells + np.stack([
        (conf.sum(axis=1) * offsets).sum(axis=1), (conf.sum(axis=2) * offsets).sum(axis=1),
    ], axis=1) / np.maximum(total, 1e-30)[:, None]
    refine = inside & (conf.max(axis=(1, 2)) >= HEATMAP_MIN_CONFIDENCE)
    return np.where(refine[:, None], centroid / size, xy)


class PoseLandmarker:
    """The BlazePose landmark model: a ROI of the frame in, 33 landmarks with visibility out."""

    def __init__(self, path, num_threads: int):
        self.model = Model(path, num_threads)
        self.tensors = find_tensors(self.model, LANDMARK_SIZE, {
            "landmarks": (1, 195), "flag": (1, 1), "mask": (1, LANDMARK_SIZE, LANDMARK_SIZE, 1),
            "heatmap": (1, 64, 64, 39), "world": (1, 117),
        }, "BlazePose landmark model")
        self.input = np.empty((1, LANDMARK_SIZE, LANDMARK_SIZE, 3), np.float32)

    def _output(self, name: str) -> np.ndarray:
        return self.model.output(self.tensors[name])

    def landmarks(self, image: np.ndarray, roi: Roi, mirror: bool, with_mask: bool, clock: Stopwatch) -> Landmarks:
        """Landmarks of the person in `roi` (pixels of the possibly mirrored image)."""
        to_input(crop(image, roi, LANDMARK_SIZE, mirror), self.input, 1 / 255, 0.0)
        clock.lap("preprocess")
        self.model.run(self.input)
        clock.lap("invoke")
        out = self._output
        raw = out("landmarks").reshape(39, 5).astype(np.float64)
        xy = refine_from_heatmap(raw[:, :2] / LANDMARK_SIZE, out("heatmap"))
        xyz = np.empty((39, 3))
        xyz[:, :2] = roi.project(xy * LANDMARK_SIZE, LANDMARK_SIZE)
        xyz[:, 2] = raw[:, 2] * (roi.size / LANDMARK_SIZE)
        world = out("world").reshape(39, 3)[:NUM_LANDMARKS].astype(np.float64)
        world[:, :2] = roi.rotate(world[:, :2])
        height, width = image.shape[:2]
        mask = paste(sigmoid(out("mask")[:, :, 0]), roi, (width, height)) if with_mask else None
        landmarks = Landmarks(xyz, sigmoid(raw[:, 3]), sigmoid(raw[:, 4]), world, float(out("flag")[0]), mask)
        clock.lap("decode")
        return landmarks


class PoseSmoother:
    """MediaPipe's pose landmark filtering for one tracked person (landmarks, alignment points, world, visibility)."""

    def __init__(self):
        self.landmarks = OneEuroFilter(LANDMARK_FILTER)
        self.aux = OneEuroFilter(AUX_FILTER)
        self.world = OneEuroFilter(WORLD_FILTER)
        self.visibility = LowPassFilter(VISIBILITY_ALPHA)

    def __call__(self, lm: Landmarks, timestamp: float) -> Landmarks:
        """Smoothed copy of `lm`; speeds are measured in body sizes (the unscaled alignment square)."""
        object_scale = lm.alignment_roi(scale=1.0).size
        if object_scale < 1e-6:
            return lm
        xyz = lm.xyz.copy()
        xyz[:NUM_LANDMARKS] = self.landmarks(lm.xyz[:NUM_LANDMARKS], timestamp, 1.0 / object_scale)
        aux = slice(NUM_LANDMARKS, NUM_LANDMARKS + 2)
        xyz[aux] = self.aux(lm.xyz[aux], timestamp, 1.0 / object_scale)
        visibility = lm.visibility.copy()
        visibility[:NUM_LANDMARKS] = self.visibility(lm.visibility[:NUM_LANDMARKS])
        return Landmarks(xyz, visibility, lm.presence, self.world(lm.world, timestamp), lm.score, lm.mask)


@dataclass
class Track:
    """A person followed from frame to frame: where to look next and the filters holding their history."""

    roi: Roi
    smoother: PoseSmoother | None = field(default=None)


def _measured(roi: Roi, found: list[Landmarks]) -> bool:
    """Whether `roi` is where a person already found this frame will be looked for next (centres within a tenth
    of the side, sides within 30%): the detector proposing a tracked person again costs no landmark run."""
    if not found:
        return False
    known = np.array([(r.cx, r.cy, r.size) for r in (lm.alignment_roi() for lm in found)])
    near = np.hypot(known[:, 0] - roi.cx, known[:, 1] - roi.cy) < SAME_ROI_DISTANCE * known[:, 2]
    alike = np.abs(np.log(known[:, 2] / max(roi.size, 1e-9))) < np.log(SAME_ROI_SIZE)
    return bool((near & alike).any())


def _same_person(a: Landmarks, b: Landmarks) -> bool:
    """Whether two results are one person found twice: landmarks within a tenth of the body size of each other."""
    size = a.alignment_roi(scale=1.0).size
    distance = np.median(np.linalg.norm(a.xyz[:NUM_LANDMARKS, :2] - b.xyz[:NUM_LANDMARKS, :2], axis=1))
    return bool(distance < SAME_PERSON_DISTANCE * size)


class BlazePoseEstimator(BaseEstimator):
    """BlazePose on TFLite: frame in, up to `num_poses` poses (BlazePose-33 layout, image pixels) out.

    Keypoint `score` is the landmark's visibility; the pose score is the landmark model's presence.
    People are found by BlazePose's detector or, with `person_detector` "posenet" or "movenet", by that
    multi-person estimator (`proposer`, built from defaults if not given; topdown.py).
    `detector_runs` counts detector invocations (tracking skips it while people stay found);
    `timings` holds the last frame's seconds per stage (preprocess, invoke, decode).
    """

    layout = BLAZEPOSE33

    def __init__(self, model: ModelSettings | None = None, settings: BlazePoseSettings | None = None,
                 store: ModelStore | None = None, proposer=None):
        self.model_settings = replace(model) if model else ModelSettings(name="blazepose-full")
        self.settings = s = settings or BlazePoseSettings()
        store = store or ModelStore.from_environment()
        landmark = store.resolve(self.model_settings.name)
        self.model_name = landmark.name
        threads, mirror = self.model_settings.num_threads, self.model_settings.flip_horizontal
        self.landmarker = PoseLandmarker(landmark.path, threads)
        if s.person_detector == "blazepose":
            self.detector = PoseDetector(store.resolve(s.detector).path, threads, mirror,
                                         s.min_pose_detection_confidence)
        else:
            from ..config import Config
            from .topdown import PoseProposer, build_proposer

            proposer = proposer or build_proposer(Config(model=self.model_settings), s.person_detector, store)
            self.detector = PoseProposer(proposer, ROI_SCALE)
        self.tracks: list[Track] = []
        self.detector_runs = 0
        self.frames_since_detection = 0
        self.timings: dict[str, float] = {}

    @property
    def tracking(self) -> bool:
        return self.settings.running_mode == "video"

    @property
    def smooths_keypoints(self) -> bool:
        return self.tracking and self.settings.smooth_landmarks

    def _estimate(self, frame: Frame) -> list[Pose]:
        image, mirror, s = frame.image, self.model_settings.flip_horizontal, self.settings
        clock = Stopwatch()
        self.frames_since_detection += 1
        found: list[tuple[Track, Landmarks]] = []

        def admit(track: Track, threshold: float) -> None:
            lm = self.landmarker.landmarks(image, track.roi, mirror, s.output_segmentation_masks, clock)
            if lm.score >= threshold and not any(_same_person(lm, other) for _, other in found):
                found.append((track, lm))

        for track in self.tracks:
            admit(track, s.min_tracking_confidence)
        lost = len(found) < len(self.tracks)
        if len(found) < s.num_poses and (lost or not found or self.frames_since_detection >= s.detect_every):
            self.detector_runs += 1
            self.frames_since_detection = 0
            for roi in self.detector.detect(image, s.num_poses, clock):
                if len(found) < s.num_poses and not _measured(roi, [lm for _, lm in found]):
                    admit(Track(roi, PoseSmoother() if s.smooth_landmarks and self.tracking else None),
                          s.min_pose_presence_confidence)
        poses = []
        for track, lm in found:
            if track.smoother is not None:
                lm = track.smoother(lm, frame.timestamp)
            track.roi = lm.alignment_roi()
            poses.append(self._pose(lm, (image.shape[1], image.shape[0])))
        self.tracks = [track for track, _ in found] if self.tracking else []
        clock.lap("decode")
        self.timings = clock.timings
        return poses

    def _pose(self, lm: Landmarks, image_size: tuple[int, int]) -> Pose:
        visibility = lm.visibility[:NUM_LANDMARKS]
        pose = make_pose(BLAZEPOSE33, lm.xyz[:NUM_LANDMARKS, :2], visibility, image_size,
                         self.model_settings.keypoint_threshold, lm.score,
                         z=lm.xyz[:NUM_LANDMARKS, 2] / image_size[0], visibility=visibility)
        pose.world = lm.world
        pose.mask = lm.mask
        return pose

    def close(self) -> None:
        """Forget tracked people; the models (the proposer's too) need no explicit release."""
        self.tracks = []


class BlazePose(BlazePoseEstimator):
    """BlazePose for library users: `BlazePose()` (full), `BlazePose("blazepose-lite")` or a .tflite path,
    with any [model] or [blazepose] setting as a keyword (`BlazePose(num_poses=2, running_mode="image")`)."""

    def __init__(self, model: str = "blazepose-full", *, store: ModelStore | None = None, **options):
        super().__init__(*settings_from(options, ModelSettings(name=model), BlazePoseSettings()), store=store)


def to_coco17(pose: Pose) -> Pose:
    """The same person in the COCO-17 layout (every COCO keypoint has a same-named BlazePose landmark)."""
    return to_layout(pose, COCO17)
