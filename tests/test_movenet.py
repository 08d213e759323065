"""MoveNet MultiPose on real photos: anatomy, mirroring, and the library entry point (its COCO AP is guarded
in test_eval_guard.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import DATA
from piposer import MoveNet

IMAGE = DATA / "tflite_pose_testdata" / "image3.jpeg"


@pytest.fixture(scope="module")
def net():
    with MoveNet() as movenet:
        yield movenet


def test_one_person_standing_is_found_with_plausible_anatomy(net):
    image = cv2.imread(str(IMAGE))
    (pose,) = net.estimate(image)
    kp = {k.name: k for k in pose.keypoints}
    assert pose.score > 0.5 and all(k.detected for k in pose.keypoints if "ankle" not in k.name)
    assert kp["nose"].y < kp["left_shoulder"].y < kp["left_hip"].y < kp["left_knee"].y  # upright
    assert kp["left_shoulder"].x > kp["right_shoulder"].x  # facing the camera: their left is on our right
    assert 0 <= pose.box.x0 < pose.box.x1 <= image.shape[1] and 0 <= pose.box.y0 < pose.box.y1 <= image.shape[0]


def test_flip_horizontal_mirrors_the_keypoints(net):
    image = cv2.imread(str(IMAGE))
    (plain,) = net.estimate(image)
    with MoveNet(flip_horizontal=True) as mirrored_net:
        (mirrored,) = mirrored_net.estimate(image)
    width = image.shape[1]
    a = np.array([(k.x, k.y) for k in plain.keypoints if k.detected and k.name == "nose"])
    b = np.array([(width - k.x, k.y) for k in mirrored.keypoints if k.name == "nose"])
    assert np.abs(a - b).max() < 6.0  # the same nose, seen in the mirror
