"""MoveNet MultiPose on real photos: anatomy, mirroring, and the library entry point (its COCO AP is guarded
in test_eval_guard.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import DATA
from piposer import MoveNet, PiposerError

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


TRUTH = np.loadtxt(DATA / "tflite_pose_testdata" / "pose_landmark_truth.csv", delimiter=",", skiprows=1).reshape(2, 17, 2)
GOOGLE_TOLERANCE = 21  # px, L-inf per keypoint: tensorflow/examples raspberry_pi ml/movenet_test.py


@pytest.mark.parametrize("model", ["movenet-lightning", "movenet-lightning-int8", "movenet-thunder"])
def test_singlepose_keypoints_are_within_googles_tolerance(model):
    """Every keypoint on both test photos, letterboxed and again in the region the first pass gave (these
    full-height people make it the whole frame again; the video test below checks real crops)."""
    with MoveNet(model) as net:
        for truth, name in zip(TRUTH, ("image1.png", "image2.jpeg")):
            image = cv2.imread(str(DATA / "tflite_pose_testdata" / name))
            net.region = None
            for _ in range(2):  # letterboxed whole frame, then the crop region the first pass placed
                (pose,) = net.estimate(image)
                distance = np.abs(pose.xy() - truth).max(axis=1)
                assert distance.max() <= GOOGLE_TOLERANCE, (model, name, distance.round(1))


def test_singlepose_crop_follows_the_person_on_video_and_falls_back_to_the_whole_frame():
    video = cv2.VideoCapture(str(DATA / "video" / "room_single.avi"))  # 1920x1080, one person ~380 px tall
    frames = [video.read()[1] for _ in range(20)]
    with MoveNet("movenet-thunder", running_mode="image") as whole:
        whole_scores = [whole.estimate(f)[0].score for f in frames]
        assert whole.region is None  # image mode never crops
    with MoveNet("movenet-thunder") as net:
        scores = []
        for frame in frames:
            (pose,) = net.estimate(frame)
            scores.append(pose.score)
            hips = pose.xy()[[11, 12]].mean(axis=0)
            region = net.region
            assert (region.cx, region.cy) == pytest.approx(tuple(hips))  # centred on the hips it just found
            half = region.size / 2
            assert 300 < region.size < 700  # a body-sized square, not the 1920 px frame
            assert region.cx - half <= pose.box.x0 and pose.box.x1 <= region.cx + half
            assert region.cy - half <= pose.box.y0 and pose.box.y1 <= region.cy + half
        assert np.median(scores[1:]) > np.median(whole_scores) + 0.15  # measured 0.78 against 0.48
        net.estimate(np.zeros_like(frames[0]))  # nobody: torso lost
        assert (net.region.cx, net.region.cy, net.region.size) == (960, 540, 1920)


def street_frames(step: int = 50) -> list[np.ndarray]:
    video = cv2.VideoCapture(str(DATA / "video" / "street_multi.avi"))  # 1280x720, people 60-400 px tall
    frames = [video.read()[1] for _ in range(200)]
    return frames[::step]


def test_tiles_find_the_small_people_of_a_wide_frame_once_each():
    frames = street_frames()
    counts = {}
    for tiles in (1, 2):
        with MoveNet(tiles=tiles, max_poses=6 * tiles) as net:
            found = [net.estimate(f) for f in frames]
        counts[tiles] = sum(p.score >= 0.3 for poses in found for p in poses)
        for poses in found:  # where the two 720 px tiles overlap, each person is reported once
            boxes = np.array([(p.box.x0, p.box.y0, p.box.x1, p.box.y1) for p in poses])
            lo, hi = np.maximum(boxes[:, None, :2], boxes[None, :, :2]), np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
            inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
            area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
            np.fill_diagonal(inter, 0)
            assert (inter / np.minimum(area[:, None], area[None, :]) <= 0.5).all()
    assert counts[2] >= 2.5 * counts[1] and counts[2] >= 10, counts  # measured 0.9 -> 3.1 people per frame


def test_tiles_are_for_multipose_only():
    with pytest.raises(PiposerError, match="movenet.tiles = 2 needs MoveNet MultiPose"):
        MoveNet("movenet-lightning", tiles=2)
