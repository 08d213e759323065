"""BlazePose numerics without models: SSD anchors and decoding, weighted NMS, letterbox, ROI warps, One-Euro."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from piposer.estimators.blazepose import refine_from_heatmap
from piposer.estimators.roi import (
    Roi, crop, letterbox_padding, letterbox_roi, normalize_angle, paste, roi_from_alignment,
)
from piposer.estimators.ssd import Detections, decode, remove_letterbox, ssd_anchors, weighted_nms
from piposer.smoothing import LowPassFilter, OneEuroFilter, OneEuroParams


def test_anchor_count_and_layout_follow_the_pose_detection_graph():
    anchors = ssd_anchors()
    assert anchors.shape == (2254, 2)
    # stride 8: 28x28 cells x 2 anchors; stride 16: 14x14 x 2; three stride-32 layers share 7x7 x 6
    grid28, grid14, grid7 = anchors[:1568], anchors[1568:1960], anchors[1960:]
    np.testing.assert_allclose(grid28[[0, 1, 2, 55, 56]],
                               [[0.5 / 28, 0.5 / 28]] * 2 + [[1.5 / 28, 0.5 / 28], [27.5 / 28, 0.5 / 28],
                                                            [0.5 / 28, 1.5 / 28]], rtol=1e-6)
    np.testing.assert_allclose(grid14[0], [0.5 / 14, 0.5 / 14], rtol=1e-6)
    np.testing.assert_allclose(grid7[:6], [[0.5 / 7, 0.5 / 7]] * 6, rtol=1e-6)
    np.testing.assert_allclose(grid7[6], [1.5 / 7, 0.5 / 7], rtol=1e-6)
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7], rtol=1e-6)
    assert len(np.unique(grid7, axis=0)) == 49


def test_decode_offsets_boxes_and_keypoints_from_their_anchor():
    anchors = np.array([[0.25, 0.5], [0.75, 0.75]], dtype=np.float32)
    raw = np.zeros((2, 12), dtype=np.float32)
    raw[0] = [22.4, -11.2, 44.8, 89.6, 0, 0, 11.2, 22.4, 0, 0, 0, 0]
    logits = np.array([[2.0], [-2.0]], dtype=np.float32)
    dets = decode(raw, logits, anchors, 224, min_score=0.5)
    assert len(dets) == 1
    np.testing.assert_allclose(dets.scores, [1 / (1 + math.exp(-2))], rtol=1e-6)
    # centre (0.25 + 0.1, 0.5 - 0.05), size (0.2, 0.4)
    np.testing.assert_allclose(dets.boxes[0], [0.25, 0.25, 0.45, 0.65], atol=1e-6)
    np.testing.assert_allclose(dets.keypoints[0, :2], [[0.25, 0.5], [0.30, 0.6]], atol=1e-6)


def test_weighted_nms_averages_each_cluster_by_score_and_keeps_its_best_score():
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]], dtype=np.float32)
    points = boxes.reshape(3, 2, 2)
    dets = weighted_nms(Detections(boxes, points, np.array([0.6, 0.9, 0.7], dtype=np.float32)), 0.3)
    np.testing.assert_allclose(dets.scores, [0.9, 0.7])
    np.testing.assert_allclose(dets.boxes[0], [0.06, 0.0, 1.06, 1.0], atol=1e-6)  # 0.9/1.5 x 0.1
    np.testing.assert_allclose(dets.keypoints[0], [[0.06, 0.0], [1.06, 1.0]], atol=1e-6)
    np.testing.assert_allclose(dets.boxes[1], boxes[2])
    assert len(weighted_nms(dets.take(slice(0, 0)))) == 0
    flat = Detections(np.array([[0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.1, 0.1]]), np.zeros((2, 1, 2)), np.array([0.9, 0.8]))
    np.testing.assert_allclose(weighted_nms(flat).scores, [0.9, 0.8])  # empty boxes: kept, no endless loop
    assert len(weighted_nms(Detections(boxes, points, np.array([0.6, 0.9, 0.7])), 0.3, max_count=1)) == 1


def test_letterbox_removal_inverts_the_letterbox_crop():
    image = np.zeros((120, 240, 3), np.uint8)
    image[30, 60] = 255                                   # one bright pixel at x=60, y=30
    patch = crop(image, letterbox_roi(240, 120), 224, border=cv2.BORDER_CONSTANT)
    y, x = np.unravel_index(np.argmax(patch[..., 0]), patch.shape[:2])
    assert letterbox_padding(240, 120) == (0.0, 0.25)
    found = remove_letterbox(Detections(np.zeros((1, 4)), np.array([[[(x + 0.5) / 224, (y + 0.5) / 224]]]),
                                        np.ones(1)), letterbox_padding(240, 120))
    # one letterbox pixel is 240/224 image pixels; the bright pixel comes back within that
    np.testing.assert_allclose(found.keypoints[0, 0] * [240, 120], [60.5, 30.5], atol=240 / 224)


@pytest.mark.parametrize("head, rotation", [((0, -1), 0.0), ((1, 0), math.pi / 2), ((-1, 0), -math.pi / 2),
                                            ((0, 1), -math.pi), ((1, -1), math.pi / 4)])
def test_roi_from_alignment_turns_the_body_upright_and_scales_like_mediapipe(head, rotation):
    centre = np.array([100.0, 200.0])
    roi = roi_from_alignment(centre, centre + 40 * np.array(head), scale=1.25)
    assert roi.rotation == pytest.approx(rotation)
    assert roi.size == pytest.approx(2 * 40 * math.hypot(*head) * 1.25)
    assert (roi.cx, roi.cy) == (100.0, 200.0)
    # the head direction ends up straight up in the crop: (0, -1) in ROI space maps to `head`
    np.testing.assert_allclose(roi.rotate(np.array([[0.0, -1.0]]))[0], np.array(head) / math.hypot(*head),
                               atol=1e-12)


def test_normalize_angle_folds_into_half_open_range():
    assert normalize_angle(3 * math.pi) == pytest.approx(-math.pi)
    assert normalize_angle(-math.pi / 2 - 4 * math.pi) == pytest.approx(-math.pi / 2)


def test_rotated_crop_and_projection_round_trip():
    image = np.zeros((480, 640, 3), np.uint8)
    target = (412.0, 137.0)
    cv2.circle(image, (412, 137), 3, (255, 255, 255), -1)
    roi = Roi(400.0, 150.0, 120.0, rotation=0.7)
    patch = crop(image, roi, 256)
    ys, xs = np.nonzero(patch[..., 0] > 128)
    centre_in_patch = np.array([[xs.mean(), ys.mean()]])
    # the dot is found where the ROI matrix sends it, to a fraction of an image pixel
    np.testing.assert_allclose(roi.project(centre_in_patch, 256)[0], target, atol=0.5)
    # and the model-input corners land on the rotated square's corners
    corners = roi.project(np.array([[0, 0], [256, 0], [256, 256], [0, 256]], float), 256)
    np.testing.assert_allclose(np.linalg.norm(corners - [400, 150], axis=1), 60 * math.sqrt(2))
    np.testing.assert_allclose(np.linalg.norm(corners[1] - corners[0]), 120)


def test_mirrored_crop_equals_crop_of_the_flipped_image():
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (0, 0), 3)
    roi = Roi(70.0, 40.0, 50.0, 0.3)
    mirrored = crop(image, roi, 64, mirror=True).astype(int)
    # equal up to OpenCV's 1/32-pixel fixed-point interpolation
    np.testing.assert_allclose(mirrored, crop(cv2.flip(image, 1), roi, 64), atol=1)


def test_paste_puts_a_roi_map_back_into_the_image():
    roi = Roi(50.0, 60.0, 40.0, 0.0)
    mask = paste(np.ones((256, 256), np.float32), roi, (120, 100))
    assert mask.shape == (100, 120)
    assert mask[60, 50] == 1.0 and mask[60, 25] == 0.0 and mask[85, 50] == 0.0
    assert mask.sum() == pytest.approx(40 * 40, rel=0.05)


def test_one_euro_follows_the_mediapipe_formula():
    f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.0))
    np.testing.assert_array_equal(f(np.array([0.0, 10.0]), 0.0), [0.0, 10.0])     # first value passes
    alpha = 1 / (1 + 30 / (2 * math.pi))                                            # 1 Hz cutoff at 30 fps
    np.testing.assert_allclose(f(np.array([1.0, 10.0]), 1 / 30), [alpha, 10.0])
    np.testing.assert_array_equal(f(np.array([5.0, 5.0]), 1 / 30), [5.0, 5.0])      # stale time: unfiltered


def test_one_euro_lets_fast_motion_through_and_holds_still_points():
    params = OneEuroParams(min_cutoff=0.05, beta=80.0)
    still, moving = OneEuroFilter(params), OneEuroFilter(params)
    rng = np.random.default_rng(0)
    for i in range(60):
        t = i / 30
        out_still = still(100 + rng.normal(0, 1.0, 2), t, value_scale=1 / 200)
        out_moving = moving(np.array([100.0 + 20 * i, 0.0]), t, value_scale=1 / 200)
    assert np.abs(out_still - 100).max() < 0.5                   # noise of 1 px std is held to well under
    assert out_moving[0] == pytest.approx(100 + 20 * 59, abs=25)  # a 600 px/s move lags ~1 frame at most


def test_low_pass_blends_with_alpha():
    f = LowPassFilter(0.1)
    assert f(np.array([1.0]))[0] == 1.0
    assert f(np.array([0.0]))[0] == pytest.approx(0.9)


def test_heatmap_refinement_takes_the_window_centroid_in_mediapipe_cell_units():
    heatmap = np.full((64, 64, 3), -20.0, np.float32)
    heatmap[10, 20, 0] = heatmap[10, 22, 0] = 5.0          # two equal peaks around column 21, row 10
    heatmap[40, 40, 1] = 0.0                               # confidence 0.5 exactly: refines
    heatmap[50, 50, 2] = -0.1                              # below 0.5: left alone
    xy = np.array([[21.3 / 64, 10.6 / 64], [38.2 / 64, 41.9 / 64], [50.5 / 64, 50.5 / 64]])
    refined = refine_from_heatmap(xy, heatmap)
    # cell indices are used as positions (no half-cell shift), as MediaPipe's calculator does
    np.testing.assert_allclose(refined[0] * 64, [21.0, 10.0], atol=1e-3)
    np.testing.assert_allclose(refined[1] * 64, [40.0, 40.0], atol=0.05)
    np.testing.assert_array_equal(refined[2], xy[2])
    off_map = np.array([[-0.01, 0.5], [0.5, -0.01]])
    np.testing.assert_array_equal(refine_from_heatmap(off_map, heatmap[..., :2]), off_map)
