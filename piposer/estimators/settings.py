"""Estimator settings: [model], [posenet], [movenet], [blazepose], [hands]; light to import (the config loader needs them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from ..checks import check_range

MAX_THREADS = 64
PERSON_DETECTORS = ("blazepose", "posenet", "movenet")
SECOND_PASSES = ("off", "weak", "motion")
MAX_INPUT_SIDE = 4096  # px per side of the model input: beyond this a Pi runs out of memory, not accuracy


@dataclass
class MoveNetSettings:
    """[movenet]: which of MoveNet's candidates become poses (MultiPose gives six, SinglePose one).

    `running_mode = "video"` lets SinglePose crop each frame around the person it found in the previous
    one (Google's crop algorithm); "image" letterboxes every frame whole. MultiPose sees the whole frame, or
    with `tiles` = 2..4 that many overlapping squares of the short side (small people in wide frames, one pass each).
    """

    max_poses: int = 6
    min_pose_score: float = 0.1
    running_mode: Literal["image", "video"] = "video"
    tiles: int = 1

    def __post_init__(self):
        from ..checks import check_range

        check_range("movenet.tiles", self.tiles, 1, 4)
        check_range("movenet.max_poses", self.max_poses, 1, 6 * self.tiles)
        check_range("movenet.min_pose_score", self.min_pose_score, 0, 1)


@dataclass
class PoseNetSettings:
    """[posenet]: decoder and input settings (names follow tfjs-models PoseNet).

    The input follows the frame's aspect with its long side `long_side` (default: the model file's, 353),
    the one knob trading speed for small people; `input_size` letterboxes into a fixed size instead.
    `refine_steps` > 0 moves each decoded keypoint between grid cells (bilinear blend of the nearest cells'
    offsets; 0 keeps Google's decoder output exactly).
    `second_pass` looks again, at `second_pass_zoom` times the resolution, at up to `second_pass_crops`
    crops of a wide frame where the first pass found small people only weakly, and with `running_mode =
    "video"` where the last frame's second pass found people ("weak"; "motion" adds where something moves,
    for a camera that stays still): small people without paying the higher resolution everywhere (not with
    a fixed `input_size`).
    """

    decoder: Literal["multi", "single"] = "multi"
    output_stride: Literal[8, 16, 32] | None = None
    long_side: int | None = None
    input_size: list[int] | None = None
    running_mode: Literal["image", "video"] = "video"
    max_poses: int = 10
    score_threshold: float = 0.15
    nms_radius: float = 20.0
    min_pose_score: float = 0.1
    refine_steps: int = 0
    second_pass: Literal["off", "weak", "motion"] = "weak"
    second_pass_zoom: float = 2.0
    second_pass_crops: int = 2

    def __post_init__(self):
        from ..checks import check_range

        if self.second_pass not in SECOND_PASSES:
            raise ValueError(f"posenet.second_pass = {self.second_pass!r}: must be one of {', '.join(SECOND_PASSES)}")
        check_range("posenet.second_pass_zoom", self.second_pass_zoom, 1, 8, lo_open=True)
        check_range("posenet.second_pass_crops", self.second_pass_crops, 1, 16)
        check_range("posenet.refine_steps", self.refine_steps, 0, 8)
        if self.long_side is not None:
            if self.input_size is not None:
                raise ValueError("posenet.long_side and posenet.input_size cannot both be set: pick one")
            check_range("posenet.long_side", self.long_side, 33, MAX_INPUT_SIDE)
            if self.output_stride and (self.long_side - 1) % self.output_stride:
                raise ValueError(f"posenet.long_side = {self.long_side}: long_side-1 must be a multiple of "
                                 f"posenet.output_stride {self.output_stride} (e.g. 257, 353, 481, 641)")
        if self.input_size is not None:
            if len(self.input_size) != 2:
                raise ValueError(f"posenet.input_size must be [height, width], not {self.input_size}")
            for side, value in zip(("height", "width"), self.input_size):
                check_range(f"posenet.input_size {side}", value, 33, MAX_INPUT_SIDE)
                # without output_stride the model's stride is known only once it is loaded (checked then)
                if self.output_stride and (value - 1) % self.output_stride:
                    raise ValueError(
                        f"posenet.input_size = {self.input_size}: height-1 and width-1 must be multiples of "
                        f"posenet.output_stride {self.output_stride}")
        check_range("posenet.max_poses", self.max_poses, 1)
        check_range("posenet.score_threshold", self.score_threshold, 0, 1)
        check_range("posenet.min_pose_score", self.min_pose_score, 0, 1)
        check_range("posenet.nms_radius", self.nms_radius, 0, MAX_INPUT_SIDE, lo_open=True)


@dataclass
class BlazePoseSettings:
    """[blazepose]: options named as in MediaPipe's Pose Landmarker; `model.name` picks lite/full/heavy.

    `running_mode = "image"` treats every frame on its own; "video" tracks people from frame to frame
    (skipping the detector while they stay found) and smooths landmarks if `smooth_landmarks`.
    `person_detector` finds the people: BlazePose's own detector (people near the camera), or the
    multi-person "posenet" or "movenet" (MultiPose) model with its own section's settings, each
    proposal measured by the landmark model. In video mode, while fewer than `num_poses` people are
    tracked, it looks for more every `detect_every` frames, and at once when someone is lost.
    """

    running_mode: Literal["image", "video"] = "video"
    num_poses: int = 1
    min_pose_detection_confidence: float = 0.5
    min_pose_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    output_segmentation_masks: bool = False
    smooth_landmarks: bool = True
    detector: str = "blazepose-detector"
    person_detector: Literal["blazepose", "posenet", "movenet"] = "blazepose"
    detect_every: int = 10

    def __post_init__(self):
        from ..checks import check_range

        if self.person_detector not in PERSON_DETECTORS:
            raise ValueError(f"blazepose.person_detector = {self.person_detector!r}: must be one of "
                             f"{', '.join(PERSON_DETECTORS)}")
        check_range("blazepose.num_poses", self.num_poses, 1, 100)
        check_range("blazepose.detect_every", self.detect_every, 1, 10000)
        for name in ("min_pose_detection_confidence", "min_pose_presence_confidence", "min_tracking_confidence"):
            check_range(f"blazepose.{name}", getattr(self, name), 0, 1)


@dataclass
class HandsSettings:
    """[hands]: options named as in MediaPipe's Hand Landmarker; `model.name` picks hands-lite or hands-full.

    `running_mode = "video"` follows each hand from the previous frame's landmarks and runs the palm detector
    only while fewer than `num_hands` are followed; "image" detects palms on every frame. `detector` empty
    means the palm detector of the same size as the landmark model (palm-detection-lite for hands-lite).
    `bodies` names a body model (e.g. movenet-multipose) to run as well, so each hand names the person whose
    wrist it is on (estimators/bodyhands.py); empty: hands only.
    """

    running_mode: Literal["image", "video"] = "video"
    num_hands: int = 2
    min_hand_detection_confidence: float = 0.5
    min_hand_presence_confidence: float = 0.5
    detector: str = ""
    bodies: str = ""

    def __post_init__(self):
        check_range("hands.num_hands", self.num_hands, 1, 100)
        for name in ("min_hand_detection_confidence", "min_hand_presence_confidence"):
            check_range(f"hands.{name}", getattr(self, name), 0, 1)


def default_threads() -> int:
    """Half the CPU cores (2 on a Pi 4 or 5): the rest stay free for capture, MQTT and the OS.

    TFLite's thread pool spins while it waits, so asking for every core stalls inference badly as
    soon as anything else wants the CPU (measured here: 240 ms instead of 12 ms per frame).
    """
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class ModelSettings:
    """[model]: which model to run and the settings every family shares."""

    name: str = "posenet"
    num_threads: int = field(default_factory=default_threads)
    keypoint_threshold: float = 0.3
    flip_horizontal: bool = False

    def __post_init__(self):
        check_range("model.num_threads", self.num_threads, 1, MAX_THREADS)
        check_range("model.keypoint_threshold", self.keypoint_threshold, 0, 1)
