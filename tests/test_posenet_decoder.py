"""The vectorized decoder gives the reference algorithm's poses on real model outputs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from piposer.estimators import ModelSettings
from piposer.estimators.posenet import PoseNetEstimator, heatmap_scores
from piposer.estimators.posenet_decoder import decode_multiple, decode_single, part_candidates
from posenet_reference import decode_multiple_reference

from conftest import DATA, MODELS

COCO_DEV = DATA / "coco_dev"
IMAGE2 = DATA / "tflite_pose_testdata" / "image2.jpeg"


def coco_images():
    meta = json.loads((COCO_DEV / "person_keypoints.json").read_text())
    return [COCO_DEV / "images" / im["file_name"] for im in meta["images"]]


def model_outputs(model_name, paths):
    est = PoseNetEstimator(ModelSettings(name=model_name))
    outs = []
    for path in paths:
        heads, _ = est.infer(cv2.imread(str(path)))
        outs.append((heatmap_scores(heads["heatmap"]), heads["offsets"], heads["fwd"], heads["bwd"], est.stride))
    return outs


@pytest.fixture(scope="module")
def coco_outputs():
    return model_outputs("posenet", coco_images())


def assert_same(vectorized, reference):
    assert len(vectorized.scores) == len(reference)
    for i, (points, part_scores, score) in enumerate(reference):
        np.testing.assert_allclose(vectorized.keypoints[i], np.array(points), atol=0.5)
        np.testing.assert_allclose(vectorized.keypoint_scores[i], part_scores, atol=1e-6)
        assert vectorized.scores[i] == pytest.approx(score, abs=1e-6)


@pytest.mark.parametrize("threshold, radius, max_poses", [(0.15, 20.0, 10), (0.5, 20.0, 10), (0.1, 40.0, 3)])
def test_multi_pose_matches_reference_on_coco_dev(coco_outputs, threshold, radius, max_poses):
    total = 0
    for scores, offsets, fwd, bwd, stride in coco_outputs:
        ours = decode_multiple(scores, offsets, fwd, bwd, stride, threshold, radius, max_poses)
        ref = decode_multiple_reference(scores, offsets, fwd, bwd, stride, threshold, radius, max_poses)
        assert_same(ours, ref)
        total += len(ref)
    assert total > len(coco_outputs)  # the images hold people: poses were really compared


PINTO = str(MODELS / "model-mobilenet_v1_101_257_integer_quant.tflite")  # not offered (manifest), still a layout test


@pytest.mark.parametrize("model", ["posenet-stride8", "posenet-stride32", "posenet-coral-353x481", PINTO],
                         ids=["stride8", "stride32", "coral", "pinto"])
def test_multi_pose_matches_reference_for_other_layouts(model):
    """Other strides, Coral's uint8 mid-offset tensor and PINTO's alphabetical outputs decode alike."""
    total = 0
    for scores, offsets, fwd, bwd, stride in model_outputs(model, coco_images()[:4] + [IMAGE2]):
        ours = decode_multiple(scores, offsets, fwd, bwd, stride, 0.15, 20.0, 10)
        ref = decode_multiple_reference(scores, offsets, fwd, bwd, stride, 0.15, 20.0, 10)
        assert_same(ours, ref)
        total += len(ref)
    assert total > 0


def test_part_candidates_are_local_maxima_above_threshold():
    scores = np.zeros((5, 5, 17), dtype=np.float32)
    scores[1, 1, 0] = 0.9   # a peak
    scores[1, 2, 0] = 0.8   # its neighbour: not a maximum
    scores[3, 3, 0] = 0.8   # a second, separate peak
    scores[4, 4, 5] = 0.1   # below threshold
    y, x, part, score = part_candidates(scores, 0.15)
    assert list(zip(y, x, part)) == [(1, 1, 0), (3, 3, 0)]
    np.testing.assert_allclose(score, [0.9, 0.8])


def test_single_pose_is_argmax_plus_offset():
    scores = np.zeros((3, 4, 17), dtype=np.float32)
    offsets = np.zeros((3, 4, 34), dtype=np.float32)
    scores[2, 1, 4] = 0.7
    offsets[2, 1, 4], offsets[2, 1, 4 + 17] = 3.0, -2.0
    decoded = decode_single(scores, offsets, stride=16)
    np.testing.assert_allclose(decoded.keypoints[0, 4], [2 * 16 + 3.0, 1 * 16 - 2.0])
    assert decoded.keypoint_scores[0, 4] == pytest.approx(0.7)
