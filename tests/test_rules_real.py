"""The rules a user writes first (hand raised, person in a zone, hands together), on PoseNet's output
for real photos, checked against the same rules on the COCO-format ground truth and as pin histories."""

from __future__ import annotations

import json
import time
import tomllib
from functools import cache

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from piposer.sinks.gpio import RulesSink
from piposer.rules import RuleSettings, RulesEngine
from piposer.types import COCO17, Frame, make_pose

from conftest import DATA, MODELS
from rules_poses import Clock, sections

pytestmark = pytest.mark.skipif(not (MODELS / "MANIFEST.md").exists(), reason="needs ../shared/models")

RULES = """
[[rules]]
name = "hand_raised"   # a wrist above its shoulder
when = { any = [ { above = { a = "left_wrist", b = "left_shoulder" } },
                 { above = { a = "right_wrist", b = "right_shoulder" } } ] }
min_score = 0.3

[[rules]]
name = "left_zone"
when = { zone = { keypoint = "nose", rect = [0.0, 0.0, 0.4, 1.0] } }
actions = [ { output = "left_light", mode = "hold" } ]

[[rules]]
name = "middle_zone"
when = { zone = { keypoint = "nose", rect = [0.4, 0.0, 0.6, 1.0] } }
actions = [ { output = "middle_light", mode = "hold" } ]

[[rules]]
name = "right_zone"
when = { zone = { keypoint = "nose", polygon = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]] } }
actions = [ { output = "right_light", mode = "hold" } ]

[[rules]]
name = "hands_together"
when = { near = { a = "left_wrist", b = "right_wrist", within = 0.3 } }
"""

OUTPUTS = """
[[outputs]]
name = "left_light"
pin = 5
[[outputs]]
name = "middle_light"
pin = 6
[[outputs]]
name = "right_light"
pin = 13
[[outputs]]
name = "relay"
kind = "relay"
pin = 17
"""

AIC = ("pose_extra", "aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg")  # footballer, one arm up
CAKE = ("pose_extra", "crowdpose_106848.jpg")  # two men feeding each other cake, hands at their faces
STANDING = ("tflite_pose_testdata", "image1.png")  # arms down
SUIT = ("tflite_pose_testdata", "image2.jpeg")  # hands clasped low
SKIER = ("coco_dev", "000000000785.jpg")
PAIR = ("coco_dev", "000000040083.jpg")  # two people, one left, one right
RIGHT = ("coco_dev", "000000153797.jpg")

# The rules active on each image, by the ground truth and by eye. AIC and CrowdPose label no
# noses, so only hand_raised is compared there.
IMAGES = {
    AIC: {"hand_raised"},
    CAKE: {"hand_raised"},
    STANDING: {"middle_zone"},
    SUIT: {"middle_zone"},
    SKIER: {"middle_zone"},
    PAIR: {"left_zone", "right_zone"},
    RIGHT: {"right_zone"},
}
ZONES = {"left_zone", "middle_zone", "right_zone"}


def rules() -> list[RuleSettings]:
    return sections(tomllib.loads(RULES))[0]


def image_path(dataset: str, name: str):
    return DATA / dataset / ("" if dataset == "tflite_pose_testdata" else "images") / name


@cache
def model_poses(dataset: str, name: str):
    from piposer.estimators import ModelSettings
    from piposer.estimators.posenet import PoseNetEstimator, PoseNetSettings

    estimator = _estimator(PoseNetEstimator, ModelSettings, PoseNetSettings)
    image = cv2.imread(str(image_path(dataset, name)))
    return estimator.estimate(Frame(image, 0, time.monotonic()))


@cache
def _estimator(cls, model_settings, posenet_settings):
    return cls(model_settings(), posenet_settings())


def ground_truth_poses(dataset: str, name: str):
    """The annotated people of one image as Poses: labelled keypoints detected, the rest not."""
    coco = json.loads((DATA / dataset / "person_keypoints.json").read_text())
    image = next(i for i in coco["images"] if i["file_name"] == name)
    poses = []
    for a in coco["annotations"]:
        if a["image_id"] == image["id"] and a["num_keypoints"] > 0:
            k = np.array(a["keypoints"], dtype=np.float64).reshape(17, 3)
            poses.append(make_pose(COCO17, k[:, :2], (k[:, 2] > 0).astype(float), (image["width"], image["height"]), 0.5, 1.0))
    return poses


def active_rules(poses) -> set[str]:
    outcomes, failed = RulesEngine(rules(), Clock()).update(poses)
    assert failed == []
    return {o.rule.name for o in outcomes if o.active}


@pytest.mark.parametrize("image", list(IMAGES), ids=[n for _, n in IMAGES])
def test_rules_on_the_model_agree_with_the_ground_truth(image):
    compared = {"hand_raised"} | (ZONES if image not in (AIC, CAKE) else set())
    assert active_rules(ground_truth_poses(*image)) & compared == IMAGES[image]
    assert active_rules(model_poses(*image)) & compared == IMAGES[image]


def test_hands_together_on_real_photos():
    # The man in the suit holds his hands clasped in front of him (wrists 23 px apart in the ground
    # truth, 0.15 body sizes); the others hold them apart.
    assert "hands_together" in active_rules(ground_truth_poses(*SUIT))
    assert "hands_together" in active_rules(model_poses(*SUIT))
    for image in (STANDING, SKIER):
        assert "hands_together" not in active_rules(model_poses(*image)), image
        assert "hands_together" not in active_rules(ground_truth_poses(*image)), image


def run_sequence(table: str, sequence: list[tuple[str, str]]) -> tuple[MockFactory, list[dict]]:
    """Real model poses through a RulesSink with OUTPUTS on mock pins, one frame every 0.1 s."""
    settings = sections(tomllib.loads(table))[0]
    outputs = sections(tomllib.loads(OUTPUTS))[1]
    factory = MockFactory()
    clock = Clock()
    events = []
    sink = RulesSink(settings, outputs, pin_factory=factory, clock=clock, emit=lambda kind, **f: events.append(f))
    for image in sequence:
        sink.publish(Frame(cv2.imread(str(image_path(*image))), 0, 0.0), model_poses(*image))
        clock.advance(0.1)
    sink.close()
    return factory, events


def states(factory: MockFactory, pin: int) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def test_hand_raised_drives_the_relay():
    table = RULES.replace("min_score = 0.3", 'min_score = 0.3\nactions = [ { output = "relay", mode = "hold" } ]')
    factory, events = run_sequence(table, [STANDING, AIC, AIC, PAIR, CAKE, RIGHT])
    assert states(factory, 17) == [False, True, False, True, False]
    assert [e["edge"] for e in events if e["rule"] == "hand_raised"] == ["rising", "falling", "rising", "falling"]


def test_people_in_zones_drive_the_lights():
    factory, events = run_sequence(RULES, [STANDING, PAIR, PAIR, RIGHT, SKIER, SUIT])
    assert states(factory, 5) == [False, True, False]                # left: frames 1-2
    assert states(factory, 6) == [False, True, False, True, False]   # middle: frame 0, frames 4-5, then close
    assert states(factory, 13) == [False, True, False]               # right: frames 1-3
    assert [(e["rule"], e["edge"]) for e in events if e["rule"] == "left_zone"] == [("left_zone", "rising"), ("left_zone", "falling")]
