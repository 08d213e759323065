"""MediaPipe Hands on plain TFLite: palm detector, rotated hand ROI, 21-landmark model with handedness, tracking.

The pipeline follows MediaPipe's hand landmark tracking graph: the palm detector finds palms with
seven keypoints; the ROI turns the wrist-to-middle-finger direction upright and grows the palm box
2.6 times, shifted half a box towards the fingers. In video mode the next frame's ROI comes from the
landmarks (wrist to the knuckles, twice their box) and the detector runs only while
fewer than `num_hands` hands are followed. Each hand is a Pose in the hand21 layout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..backend import Model
from ..modelstore import ModelStore
from ..types import HAND21, Frame, Pose, make_pose
from . import BaseEstimator, ModelSettings, settings_from
from .roi import Roi, crop, roi_from_rect, rotation_towards, upright_rect
from .settings import HandsSettings
from .ssd import PALM_DETECTOR_ANCHORS
from .stages import SsdDetector, Stopwatch, find_tensors, to_input

LANDMARK_SIZE = 224
NUM_LANDMARKS = 21
PALM_ROI_SCALE, PALM_ROI_SHIFT = 2.6, -0.5    # palm box -> hand ROI (palm_detection_detection_to_roi)
TRACK_ROI_SCALE, TRACK_ROI_SHIFT = 2.0, -0.1  # landmarks -> next frame's ROI (hand_landmark_landmarks_to_roi)
PALM_WRIST, PALM_MIDDLE_MCP = 0, 2            # the palm detector's keypoints that set the ROI's rotation
# The landmarks that bound the next ROI (wrist, thumb base, knuckles and the joints above them), and the
# knuckles of index, middle and ring finger that, with the wrist, set its up direction.
ROI_LANDMARKS = np.array([0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18])
INDEX_MCP, MIDDLE_MCP, RING_MCP = (HAND21.index(f"{f}_finger_mcp") for f in ("index", "middle", "ring"))
NORMALIZE_Z = 0.4     # the landmark model's depth scale (MediaPipe divides by it)
SAME_HAND_IOU = 0.5   # a palm overlapping a followed hand's ROI more than this is that hand
DETECTOR_FOR = {"hands-lite": "palm-detection-lite", "hands-full": "palm-detection-full"}


class PalmDetector:
    """The palm detector: letterboxed frame in, one hand ROI per palm out (image pixels)."""

    def __init__(self, path, num_threads: int):
        self.ssd = SsdDetector(path, num_threads, PALM_DETECTOR_ANCHORS, 7, (0.0, 1.0), "MediaPipe palm detector")

    def detect(self, image: np.ndarray, mirror: bool, min_score: float, max_count: int,
               clock: Stopwatch) -> list[Roi]:
        """ROIs of up to `max_count` hands, best palm first."""
        dets = self.ssd.detect(image, mirror, min_score, max_count, clock)
        rois = []
        for box, points in zip(dets.boxes, dets.keypoints):
            (x0, y0), (x1, y1) = box[:2], box[2:]
            rotation = rotation_towards(points[PALM_WRIST], points[PALM_MIDDLE_MCP])
            rois.append(roi_from_rect((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, rotation,
                                      PALM_ROI_SCALE, PALM_ROI_SHIFT))
        return rois


@dataclass
class HandLandmarks:
    """One landmark-model result: xyz (21, 3) in image pixels with z scaled like x, world (21, 3) in metres,
    hand presence, and the probability that it is a right hand (as seen in the image the model was given)."""

    xyz: np.ndarray
    world: np.ndarray
    presence: float
    right: float

    def next_roi(self) -> Roi:
        """Where to look for this hand in the next frame."""
        xy = self.xyz[:, :2]
        knuckles = ((xy[INDEX_MCP] + xy[RING_MCP]) / 2 + xy[MIDDLE_MCP]) / 2
        rotation = rotation_towards(xy[0], knuckles)
        return roi_from_rect(*upright_rect(xy[ROI_LANDMARKS], rotation), rotation, TRACK_ROI_SCALE, TRACK_ROI_SHIFT)


class HandLandmarker:
    """The hand landmark model: a ROI of the frame in, 21 landmarks, presence, handedness and world points out."""

    def __init__(self, path, num_threads: int):
        self.model = Model(path, num_threads)
        # outputs in file order: screen landmarks, hand presence, handedness, world landmarks
        self.tensors = find_tensors(self.model, LANDMARK_SIZE, {
            "landmarks": (1, 3 * NUM_LANDMARKS), "presence": (1, 1), "handedness": (1, 1),
            "world": (1, 3 * NUM_LANDMARKS)}, "MediaPipe hand landmark model", by_order=True)

    def landmarks(self, image: np.ndarray, roi: Roi, mirror: bool, clock: Stopwatch) -> HandLandmarks:
        """Landmarks of the hand in `roi` (pixels of the possibly mirrored image)."""
        to_input(crop(image, roi, LANDMARK_SIZE, mirror, perspective=True), self.model.input_buffer(), 1 / 255, 0.0)
        clock.lap("preprocess")
        self.model.invoke()
        clock.lap("invoke")
        out = lambda name: self.model.output(self.tensors[name])  # noqa: E731
        raw = out("landmarks").reshape(NUM_LANDMARKS, 3).astype(np.float64)
        xyz = np.empty_like(raw)
        xyz[:, :2] = roi.project(raw[:, :2], LANDMARK_SIZE)
        xyz[:, 2] = raw[:, 2] / NORMALIZE_Z * (roi.size / LANDMARK_SIZE)
        world = out("world").reshape(NUM_LANDMARKS, 3).astype(np.float64)
        world[:, :2] = roi.rotate(world[:, :2])
        hand = HandLandmarks(xyz, world, float(out("presence")[0]), float(out("handedness")[0]))
        clock.lap("decode")
        return hand


def overlap(a: Roi, b: Roi) -> float:
    """Intersection over union of two ROIs' axis-aligned squares, their rotation ignored (as MediaPipe's
    association compares hand rectangles); plain floats, as it runs for every pair of ROIs every frame."""
    across = [min(p + a.size / 2, q + b.size / 2) - max(p - a.size / 2, q - b.size / 2)
              for p, q in ((a.cx, b.cx), (a.cy, b.cy))]
    inter = max(across[0], 0.0) * max(across[1], 0.0)
    union = a.size ** 2 + b.size ** 2 - inter
    return inter / union if union > 0 else 0.0


def associate(rois: list[Roi]) -> list[Roi]:
    """The ROIs that are different hands, as MediaPipe's association step picks them: in rising priority, each
    ROI replaces those before it that it overlaps by more than SAME_HAND_IOU (new palms come before followed
    hands, so two followed ROIs that close in on one hand become one and the detector looks again)."""
    kept: list[Roi] = []
    for roi in rois:
        kept = [k for k in kept if overlap(roi, k) <= SAME_HAND_IOU] + [roi]
    return kept


class HandsEstimator(BaseEstimator):
    """MediaPipe Hands on TFLite: frame in, up to `num_hands` hands out, each a Pose in the hand21 layout.

    Every keypoint's score is the hand's presence (the model gives no per-landmark confidence); `handedness`
    is "left" or "right" with its probability; `world` holds the 21 points in metres around the hand's centre.
    `detector_runs` counts palm detector invocations; `timings` the last frame's seconds per stage.
    """

    layout = HAND21

    def __init__(self, model: ModelSettings | None = None, settings: HandsSettings | None = None,
                 store: ModelStore | None = None):
        self.model_settings = replace(model) if model else ModelSettings(name="hands-full")
        self.settings = settings or HandsSettings()
        store = store or ModelStore.from_environment()
        name = self.model_settings.name
        landmark = store.resolve(name)
        detector = store.resolve(self.settings.detector or DETECTOR_FOR.get(name, "palm-detection-full"))
        self.model_name = landmark.name
        threads = self.model_settings.num_threads
        self.detector = PalmDetector(detector.path, threads)
        self.landmarker = HandLandmarker(landmark.path, threads)
        self.rois: list[Roi] = []
        self.detector_runs = 0
        self.timings: dict[str, float] = {}

    @property
    def tracking(self) -> bool:
        return self.settings.running_mode == "video"

    def _estimate(self, frame: Frame) -> list[Pose]:
        image, mirror, s = frame.image, self.model_settings.flip_horizontal, self.settings
        clock = Stopwatch()
        followed, palms = self.rois, []
        if len(followed) < s.num_hands:
            self.detector_runs += 1
            palms = self.detector.detect(image, mirror, s.min_hand_detection_confidence, s.num_hands, clock)
        # as in MediaPipe, a followed hand's ROI and up to num_hands new palms all get a look: the followed
        # one may have gone (a cut, a hand leaving), and a palm beside it must not wait for the next frame;
        # followed hands come first, so they are the ones kept at the num_hands cap
        rois = sorted(associate(palms + followed), key=lambda roi: roi not in followed)
        hands = [self.landmarker.landmarks(image, roi, mirror, clock) for roi in rois]
        hands = [hand for hand in hands if hand.presence >= s.min_hand_presence_confidence][:s.num_hands]
        self.rois = [hand.next_roi() for hand in hands] if self.tracking else []
        poses = [self._pose(hand, (frame.width, frame.height)) for hand in hands]
        clock.lap("decode")
        self.timings = clock.timings
        return poses

    def _pose(self, hand: HandLandmarks, image_size: tuple[int, int]) -> Pose:
        scores = np.full(NUM_LANDMARKS, hand.presence)
        pose = make_pose(HAND21, hand.xyz[:, :2], scores, image_size, self.model_settings.keypoint_threshold,
                         hand.presence, z=hand.xyz[:, 2] / image_size[0])
        pose.world = hand.world
        right = hand.right >= 0.5
        pose.handedness, pose.handedness_score = ("right", hand.right) if right else ("left", 1.0 - hand.right)
        return pose

    def close(self) -> None:
        """Forget followed hands; the models need no explicit release."""
        self.rois = []


class Hands(HandsEstimator):
    """Hands for library users: `Hands()` (full), `Hands("hands-lite")` or a .tflite path, with any [model] or
    [hands] setting as a keyword (`Hands(num_hands=1, running_mode="image")`)."""

    def __init__(self, model: str = "hands-full", *, store: ModelStore | None = None, **options):
        super().__init__(*settings_from(options, ModelSettings(name=model), HandsSettings()), store=store)
