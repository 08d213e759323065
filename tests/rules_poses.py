"""Synthetic poses, a hand-driven clock and config-section builders for the rules and GPIO tests."""

from __future__ import annotations

import numpy as np

from piposer.config import build
from piposer.rules import ButtonSettings, OutputSettings
from piposer.rules import RuleSettings
from piposer.types import COCO17, Layout, Pose, make_pose

# A person standing in the middle of a 640x480 image, arms down (normalized x, y).
STANDING = {
    "nose": (0.50, 0.20), "left_eye": (0.52, 0.18), "right_eye": (0.48, 0.18),
    "left_shoulder": (0.56, 0.32), "right_shoulder": (0.44, 0.32),
    "left_elbow": (0.58, 0.45), "right_elbow": (0.42, 0.45),
    "left_wrist": (0.59, 0.56), "right_wrist": (0.41, 0.56),
    "left_hip": (0.54, 0.60), "right_hip": (0.46, 0.60),
    "left_knee": (0.54, 0.78), "right_knee": (0.46, 0.78),
    "left_ankle": (0.54, 0.95), "right_ankle": (0.46, 0.95),
}


def pose(
    points: dict[str, tuple[float, float]] | None = None,
    *,
    track_id: int | None = None,
    size: tuple[int, int] = (640, 480),
    score: float = 0.9,
    missing: tuple[str, ...] = (),
    shift: tuple[float, float] = (0.0, 0.0),
    layout: Layout = COCO17,
    **moved: tuple[float, float],
) -> Pose:
    """A pose from normalized positions (STANDING by default, `moved` overriding some keypoints).

    Keypoints not given, or listed in `missing`, get score 0.05 and are not detected (threshold 0.3).
    """
    points = {**(STANDING if points is None else points), **moved}
    width, height = size
    xy = np.zeros((len(layout.keypoints), 2))
    scores = np.full(len(layout.keypoints), 0.05)
    for name, (nx, ny) in points.items():
        i = layout.index(name)
        xy[i] = ((nx + shift[0]) * width, (ny + shift[1]) * height)
        scores[i] = 0.05 if name in missing else score
    p = make_pose(layout, xy, scores, size, keypoint_threshold=0.3, score=score)
    p.track_id = track_id
    return p


def hand_raised(**kwargs) -> Pose:
    return pose(left_wrist=(0.60, 0.08), left_elbow=(0.60, 0.22), **kwargs)


class Clock:
    """A clock that only moves when told to."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def sections(data: dict) -> tuple[list[RuleSettings], list[OutputSettings], ButtonSettings | None]:
    """The [[rules]], [[outputs]] and [button] sections of a parsed TOML file, validated."""
    rules = [build(RuleSettings, r, f"rules[{i}]") for i, r in enumerate(data.get("rules", []))]
    outputs = [build(OutputSettings, o, f"outputs[{i}]") for i, o in enumerate(data.get("outputs", []))]
    button = build(ButtonSettings, data["button"], "button") if "button" in data else None
    return rules, outputs, button
