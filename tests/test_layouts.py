"""OpenPose layouts and MGT-python's data files: COCO-18's neck and MPI-15's chest derived from real poses
(ground truth and the model's), and `piposer video` writing several formats in one run, MGT-named."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from conftest import DATA
from piposer.errors import PiposerError
from piposer.layouts import check_convertible, to_layout
from piposer.tools.cli import main
from piposer.types import COCO17, COCO18, HAND21, MPI15, make_pose

# MGT-python's marker names for OpenPose's COCO model, as its _pose.py spells them
MGT_COCO = ["Nose", "Neck", "Right Shoulder", "Right Elbow", "Right Wrist", "Left Shoulder", "Left Elbow",
            "Left Wrist", "Right Hip", "Right Knee", "Right Ankle", "Left Hip", "Left Knee", "Left Ankle",
            "Right Eye", "Left Eye", "Right Ear", "Left Ear"]


def ground_truth():
    """coco_dev's annotated people as COCO-17 poses (labelled keypoints detected, the rest not)."""
    data = json.loads((DATA / "coco_dev/person_keypoints.json").read_text())
    sizes = {i["id"]: (i["width"], i["height"]) for i in data["images"]}
    for a in data["annotations"]:
        k = np.array(a["keypoints"], dtype=float).reshape(17, 3)
        yield make_pose(COCO17, k[:, :2], (k[:, 2] > 0).astype(float), sizes[a["image_id"]], 0.5, 1.0)


def test_neck_and_chest_come_from_shoulders_and_hips_and_head_top_is_never_detected():
    people = list(ground_truth())
    both_shoulders = 0
    for pose in people:
        coco18, mpi15 = to_layout(pose, COCO18), to_layout(pose, MPI15)
        ls, rs, lh, rh = (pose[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
        neck, chest = coco18["neck"], mpi15["chest"]
        assert neck.detected == (ls.detected and rs.detected) and neck.score == min(ls.score, rs.score)
        assert (neck.x, neck.y) == pytest.approx(((ls.x + rs.x) / 2, (ls.y + rs.y) / 2))
        assert chest.detected == all(k.detected for k in (ls, rs, lh, rh))
        assert (chest.x, chest.y) == pytest.approx(((ls.x + rs.x + lh.x + rh.x) / 4, (ls.y + rs.y + lh.y + rh.y) / 4))
        assert not mpi15["head_top"].detected and mpi15["head_top"].score == 0.0
        assert [k.name for k in coco18.keypoints] == list(COCO18.keypoints)
        assert coco18["left_wrist"].x == pose["left_wrist"].x and coco18.layout is COCO18
        both_shoulders += neck.detected
        if neck.detected and pose["nose"].detected:
            assert neck.y > pose["nose"].y  # upright people: the neck is below the nose
    assert both_shoulders == 33  # of coco_dev's 45 annotations (measured)


def test_hands_cannot_be_a_body_layout():
    with pytest.raises(PiposerError, match="--layout coco18: the model's hand21 poses have no nose, neck, "
                                           "right_shoulder and 15 more"):
        check_convertible(HAND21, COCO18)
    check_convertible(COCO17, MPI15)  # every body model can


def test_video_writes_mgt_txt_and_csv_in_one_run_named_as_mgt_names_them(tmp_path):
    clip = tmp_path / "dance.avi"
    shutil.copy(DATA / "video/room_single.avi", clip)  # 103 frames, one person
    assert main(["video", str(clip), "--out", str(tmp_path / "dance.mp4"), "--data", "txt", "--data", "csv",
                 "--layout", "coco18"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dance.avi", "dance.mp4", "dance_pose.csv", "dance_pose.txt"]
    lines = (tmp_path / "dance_pose.txt").read_text().splitlines()
    assert lines[0].split(" ") == ["Time"] + [w for name in MGT_COCO for w in f"{name} X {name} Y".split()]
    table = list(csv.DictReader((tmp_path / "dance_pose.csv").open()))
    first = {}
    for row in table:
        first.setdefault(row["frame"], row)
    assert len(lines) == 1 + 103 and len(first) == 103  # one txt row per frame, somebody in every frame
    for line in lines[1::10]:
        values = line.split(" ")
        frame = round(int(values[0]) / 1000 * 30)  # MGT's time column: milliseconds of the 30 fps clip
        row = first[str(frame)]
        xy = np.array(values[1:], dtype=float).reshape(18, 2)
        for name, (nx, ny) in zip(COCO18.keypoints, xy):
            if row[f"{name}_x"]:
                assert (nx * 1920, ny * 1080) == pytest.approx((float(row[f"{name}_x"]), float(row[f"{name}_y"])), abs=0.06)
            else:
                assert nx == ny == 0.0
    # The overlay is drawn in the same layout: OpenPose's neck-to-nose link crosses the throat, where COCO-17
    # draws nothing (its face links stop at the nose); the MP4 is lossy, so look for a clear colour change.
    import cv2

    row = first["0"]
    neck = np.array([float(row["neck_x"]), float(row["neck_y"])])
    nose = np.array([float(row["nose_x"]), float(row["nose_y"])])
    x, y = np.round((neck + nose) / 2).astype(int)
    drawn, source = (cv2.VideoCapture(str(p)).read()[1] for p in (tmp_path / "dance.mp4", clip))
    assert np.abs(drawn[y - 1:y + 2, x - 1:x + 2].astype(int) - source[y - 1:y + 2, x - 1:x + 2]).max() > 60
