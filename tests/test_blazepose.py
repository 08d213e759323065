"""BlazePose on real models and real pictures: accuracy against ground truth, tracking on a real video, errors."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from conftest import DATA, MODELS
from piposer.errors import PiposerError
from piposer.tools.evaluate import oks
from piposer.estimators import ModelSettings
from piposer.estimators.blazepose import BlazePoseEstimator, BlazePoseSettings, to_coco17
from piposer.types import BLAZEPOSE33, COCO17, Frame

TESTDATA = DATA / "tflite_pose_testdata"
COCO_DEV = DATA / "coco_dev"
VIDEO = DATA / "video"


def estimator(name="blazepose-full", **settings) -> BlazePoseEstimator:
    # one thread: TFLite's two-thread pool slows down many times over when other processes load the CPU
    return BlazePoseEstimator(ModelSettings(name=name, num_threads=1), BlazePoseSettings(**settings))


def frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(image, index, index / 30)


def video_frames(name: str, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO / name))
    images = [capture.read()[1] for _ in range(count)]
    capture.release()
    return images


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return np.loadtxt(TESTDATA / "pose_landmark_truth.csv", delimiter=",", skiprows=1).reshape(2, 17, 2)


@pytest.fixture(scope="module")
def room_single() -> list[np.ndarray]:
    return video_frames("room_single.avi", 24)


@pytest.mark.parametrize("model", ["blazepose-lite", "blazepose-full", "blazepose-heavy"])
def test_landmarks_match_the_tflite_example_truth(model, truth):
    # Measured distances to this truth are 0-15 px (median 5-8 px) for all three models, except
    # image2's left wrist, where MediaPipe itself lands 35-51 px away (the truth puts that hand
    # elsewhere). 20 px is what one would accept from Google's own tests (21 px L-inf for MoveNet).
    est = estimator(model, running_mode="image")
    for row, name in enumerate(["image1.png", "image2.jpeg"]):
        image = cv2.imread(str(TESTDATA / name))
        poses = est.estimate(frame(image))
        assert len(poses) == 1 and poses[0].score > 0.9
        coco = to_coco17(poses[0])
        errors = np.linalg.norm(coco.xy() - truth[row], axis=1)
        if name == "image2.jpeg":
            errors = np.delete(errors, COCO17.index("left_wrist"))
        assert errors.max() < 20, (name, errors.round(1))
        assert np.median(errors) < 10
        assert coco.detected().sum() >= 15                  # heavy is unsure about image1's ears


def test_landmarks_agree_with_coco_ground_truth():
    # OKS per single-person image measured for the full model: 0.91, 0.95, 0.90, 0.84 (heavy 0.88-0.96,
    # lite 0.76-0.95). 0.8 fails on a ROI or projection mistake of a few percent of the person's size.
    data = json.loads((COCO_DEV / "person_keypoints.json").read_text())
    est = estimator(running_mode="image")
    for image_id in (785, 109313, 153797, 349860):
        info = next(i for i in data["images"] if i["id"] == image_id)
        (annotation,) = [a for a in data["annotations"] if a["image_id"] == image_id and a["num_keypoints"]]
        poses = est.estimate(frame(cv2.imread(str(COCO_DEV / "images" / info["file_name"]))))
        assert len(poses) == 1
        truth = np.array(annotation["keypoints"], float).reshape(17, 3)
        assert oks(to_coco17(poses[0]).xy(), truth, annotation["area"]) > 0.8, info["file_name"]


def test_pose_fields_world_landmarks_and_layout():
    image = cv2.imread(str(TESTDATA / "image2.jpeg"))
    (pose,) = estimator(running_mode="image").estimate(frame(image))
    assert pose.layout is BLAZEPOSE33 and len(pose.keypoints) == 33
    nose = pose["nose"]
    assert nose.nx == pytest.approx(nose.x / image.shape[1]) and nose.ny == pytest.approx(nose.y / image.shape[0])
    assert nose.score == nose.visibility and nose.detected
    assert nose.z < pose["left_hip"].z + 0.5                  # image-width units, hips near 0
    assert abs(pose["left_hip"].z + pose["right_hip"].z) < 0.05
    world = pose.world
    assert world.shape == (33, 3)
    np.testing.assert_allclose((world[23] + world[24]) / 2, 0, atol=0.03)   # hip-centred, metres
    shoulders = np.linalg.norm(world[11] - world[12])
    assert 0.2 < shoulders < 0.5
    assert world[0, 1] < world[27, 1] - 1.0                   # nose over a metre above the ankle (y down)
    assert pose.mask is None
    assert pose.box.x0 < nose.x < pose.box.x1 and pose.box.y1 > pose["left_ankle"].y - 1


def test_to_coco17_selects_the_same_named_landmarks():
    image = cv2.imread(str(TESTDATA / "image1.png"))
    (pose,) = estimator(running_mode="image").estimate(frame(image))
    pose.track_id = 7
    coco = to_coco17(pose)
    assert coco.layout is COCO17 and coco.track_id == 7 and coco.score == pose.score
    assert [k.name for k in coco.keypoints] == list(COCO17.keypoints)
    for k in coco.keypoints:
        assert k == pose[k.name]
    np.testing.assert_array_equal(coco.world[COCO17.index("left_knee")], pose.world[BLAZEPOSE33.index("left_knee")])
    assert to_coco17(coco) is coco


def test_segmentation_mask_covers_the_person_in_image_coordinates():
    image = cv2.imread(str(TESTDATA / "image2.jpeg"))
    (pose,) = estimator(running_mode="image", output_segmentation_masks=True).estimate(frame(image))
    mask = pose.mask
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    x, y = int(pose["left_hip"].x), int(pose["left_hip"].y)
    assert mask[y, x] > 0.9                                   # on the body
    edges = np.concatenate([mask[:, :40].ravel(), mask[:, -40:].ravel(), mask[:20].ravel()])
    assert edges.max() < 0.1                                  # white studio background around the person
    # the person is dark on white: the mask agrees with a simple threshold on most pixels
    dark = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) < 128
    assert ((mask > 0.5) == dark).mean() > 0.9


def test_flip_horizontal_reports_positions_in_the_mirrored_image():
    image = cv2.imread(str(TESTDATA / "image1.png"))
    flipped = BlazePoseEstimator(ModelSettings(name="blazepose-full", num_threads=1, flip_horizontal=True),
                                 BlazePoseSettings(running_mode="image")).estimate(frame(image))[0]
    reference = estimator(running_mode="image").estimate(frame(cv2.flip(image, 1)))[0]
    # same pixels up to OpenCV's fixed-point interpolation: well under a pixel
    np.testing.assert_allclose(flipped.xy(), reference.xy(), atol=1.0)
    assert np.median(np.abs(flipped.xy() - reference.xy())) < 0.2


def test_no_pose_on_an_empty_scene():
    est = estimator()
    assert est.estimate(frame(np.zeros((480, 640, 3), np.uint8))) == []
    assert est.estimate(frame(np.full((480, 640, 3), 200, np.uint8), 1)) == []


def test_tracking_skips_the_detector_on_a_steady_person_and_redetects_after_loss(room_single):
    est = estimator(running_mode="video")
    hips = []
    for i, image in enumerate(room_single[:20]):
        (pose,) = est.estimate(frame(image, i))
        hips.append(pose["left_hip"].x)
    assert est.detector_runs == 1                              # found once, then tracked
    assert np.ptp(hips) < 40                                   # one person standing in the room
    assert est.estimate(frame(np.zeros_like(room_single[0]), 20)) == []
    assert est.detector_runs == 2                              # track lost: detector asked at once
    assert len(est.estimate(frame(room_single[21], 21))) == 1
    assert est.detector_runs == 3                              # no track: detector again
    assert len(est.estimate(frame(room_single[22], 22))) == 1
    assert est.detector_runs == 3                              # tracking again


def test_image_mode_runs_the_detector_on_every_frame(room_single):
    est = estimator(running_mode="image")
    for i, image in enumerate(room_single[:3]):
        start = time.perf_counter()
        assert len(est.estimate(frame(image, i))) == 1
        elapsed = time.perf_counter() - start
        # per-stage times for `piposer bench`: two invokes dominate, and the stages add up to the call
        assert set(est.timings) == {"preprocess", "invoke", "decode"}
        assert 0 < sum(est.timings.values()) <= elapsed
        assert est.timings["invoke"] > est.timings["decode"]
    assert est.detector_runs == 3


def test_smoothing_reduces_jitter_and_can_be_switched_off(room_single):
    def jitter(smooth: bool) -> tuple[float, np.ndarray]:
        est = estimator(running_mode="video", smooth_landmarks=smooth)
        tracks = np.stack([est.estimate(frame(image, i))[0].xy() for i, image in enumerate(room_single)])
        return float(np.median(np.abs(np.diff(tracks, axis=0)))), tracks

    smooth, smoothed = jitter(True)
    raw, unsmoothed = jitter(False)
    # measured on this clip: median frame-to-frame motion 0.3 px smoothed against 0.7 px raw
    assert smooth < 0.7 * raw
    np.testing.assert_allclose(smoothed[0], unsmoothed[0])    # the first frame passes unfiltered
    # smoothing lags but does not drift: within a few pixels of the raw landmarks on average
    assert np.median(np.linalg.norm(smoothed - unsmoothed, axis=2)) < 3


def test_several_people_each_get_a_tracked_roi():
    images = video_frames("room_pair.mp4", 4)
    # the detector scores the left person 0.37 on the first frame (the right one 0.97), so lower the bar
    est = estimator(running_mode="video", num_poses=2, min_pose_detection_confidence=0.3)
    for i, image in enumerate(images):
        poses = est.estimate(frame(image, i))
        assert len(poses) == 2
        hips = [(p["left_hip"].x + p["right_hip"].x) / 2 for p in poses]
        assert abs(hips[0] - hips[1]) > 200                   # two different people, not one found twice
    assert est.detector_runs == 1                             # both tracked after the first frame
    one = estimator(running_mode="video", num_poses=1)
    assert len(one.estimate(frame(images[0]))) == 1


def test_settings_are_checked_with_their_key_names():
    with pytest.raises(ValueError, match=r"^blazepose\.num_poses"):
        BlazePoseSettings(num_poses=0)
    with pytest.raises(ValueError, match=r"^blazepose\.min_tracking_confidence"):
        BlazePoseSettings(min_tracking_confidence=1.5)


def test_models_in_the_wrong_slot_are_named_in_the_error():
    with pytest.raises(PiposerError, match=r"pose_landmark_lite\.tflite is not a BlazePose person detector"):
        BlazePoseEstimator(ModelSettings(name="blazepose-lite"), BlazePoseSettings(detector="blazepose-lite"))
    with pytest.raises(PiposerError, match=r"pose_detection\.tflite is not a BlazePose landmark model"):
        BlazePoseEstimator(ModelSettings(name="blazepose-detector"), BlazePoseSettings())
    posenet = MODELS / "posenet_mobilenet_v1_075_353_481_quant.tflite"
    with pytest.raises(PiposerError, match=r"posenet_mobilenet_v1_075_353_481_quant\.tflite is not a BlazePose landmark"):
        BlazePoseEstimator(ModelSettings(name=str(posenet)), BlazePoseSettings())
