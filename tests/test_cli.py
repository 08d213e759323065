"""The piposer command on real photos and a real video: outputs, numbering, data files and clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import cv2
import pytest

from piposer.tools.cli import main
from piposer.types import COCO17

from conftest import DATA

IMAGE2 = DATA / "tflite_pose_testdata" / "image2.jpeg"
VIDEO = DATA / "video" / "room_pair.mp4"  # 72 frames, two people


def test_image_writes_annotated_image_and_json(tmp_path, capsys):
    assert main(["image", str(IMAGE2), "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "image2.json").read_text())
    assert (doc["width"], doc["height"], doc["model"]) == (399, 640, "posenet")
    nose = doc["poses"][0]["keypoints"]["nose"]
    assert abs(nose["x"] - 182) < 35 and abs(nose["y"] - 84) < 35  # Google's truth for image2's nose
    assert nose["nx"] == pytest.approx(nose["x"] / 399, abs=1e-3) and nose["detected"] is True
    annotated = cv2.imread(str(tmp_path / "image2.jpg"))
    assert annotated.shape == (640, 399, 3) and (annotated != cv2.imread(str(IMAGE2))).any()
    assert "image2.jpeg: 1 pose ->" in capsys.readouterr().out


def test_existing_outputs_get_numbered_names_unless_overwrite(tmp_path):
    (tmp_path / "image2.json").write_text("keep me")
    assert main(["image", str(IMAGE2), "--out", str(tmp_path), "--overlay", "none"]) == 0
    assert (tmp_path / "image2.json").read_text() == "keep me"
    assert json.loads((tmp_path / "image2-1.json").read_text())["poses"]
    assert not (tmp_path / "image2.jpg").exists()  # --overlay none: no annotated copy
    assert main(["image", str(IMAGE2), "--out", str(tmp_path), "--overwrite"]) == 0
    assert json.loads((tmp_path / "image2.json").read_text())["poses"]


def test_unreadable_image_is_named_and_fails_but_others_are_done(tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    assert main(["image", str(bad), str(IMAGE2), "--out", str(tmp_path / "out")]) == 1
    assert f"piposer: error: cannot read image {bad}" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["image2.jpg", "image2.json"]


def test_video_writes_annotated_video_and_csv(tmp_path):
    out, data = tmp_path / "out.mp4", tmp_path / "poses.csv"
    assert main(["video", str(VIDEO), "--out", str(out), "--data", str(data)]) == 0
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
    rows = list(csv.reader(data.open()))
    assert rows[0][:7] == ["time", "frame", "person", "score", "nose_x", "nose_y", "nose_score"]
    assert len(rows[0]) == 4 + 3 * len(COCO17.keypoints)
    frames = {int(r[1]) for r in rows[1:]}
    assert frames == set(range(72))  # somebody found in every frame
    assert float(rows[-1][0]) == pytest.approx(int(rows[-1][1]) / 28.0, abs=0.01)  # time column from the 28 fps clip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "poses.csv"]  # no temp files left


def test_video_jsonl_has_full_pose_objects(tmp_path):
    data = tmp_path / "poses.jsonl"
    assert main(["video", str(VIDEO), "--out", str(tmp_path / "v.mp4"), "--data", str(data)]) == 0
    lines = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(lines) == 72 and lines[5]["frame"] == 5
    pose = lines[5]["poses"][0]
    assert set(pose["keypoints"]) == set(COCO17.keypoints) and pose["id"] >= 1


def test_video_that_cannot_be_opened(tmp_path, capsys):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\0" * 100)
    assert main(["video", str(bad), "--out", str(tmp_path / "o.mp4")]) == 2
    assert capsys.readouterr().err.strip() == f"piposer: error: cannot open video {bad}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_unknown_data_format_is_refused_before_anything_is_written(tmp_path, capsys):
    assert main(["video", str(VIDEO), "--out", str(tmp_path / "o.mp4"), "--data", str(tmp_path / "p.xlsx")]) == 2
    assert "unknown format '.xlsx'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["image", str(IMAGE2), "--model", "nope"], "unknown model 'nope'"),
    (["image", str(IMAGE2), "--overlay", "links,sparkles"], "--overlay: unknown 'sparkles'"),
    (["models", "verify", "nope"], "unknown model 'nope'"),
])
def test_user_mistakes_are_one_line_errors(argv, message, capsys, tmp_path):
    assert main(argv + (["--out", str(tmp_path)] if argv[0] == "image" else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_bad_config_value_names_the_key(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[posenet]\nmax_poses = 0\n")
    assert main(["config", "check", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err.strip() == f"piposer: error: config {cfg}: posenet.max_poses must be >= 1, not 0"


@pytest.mark.parametrize("content, says", [(b"not json", "are not JSON"), (b"{}", "are not a COCO keypoints file"),
                                           (b"[]", "are not a COCO keypoints file"), (b"\xff\xfe", "are not JSON"),
                                           (b'{"images": [{"id": "x"}], "annotations": [], "categories": []}',
                                            "'images' must list objects")])
def test_eval_data_that_is_not_coco_keypoints_is_a_one_line_error(tmp_path, capsys, content, says):
    data = tmp_path / "gt.json"
    data.write_bytes(content)
    assert main(["eval", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"piposer: error: annotations {data} {says}"[:40]) and says in err


def test_console_entry_point_runs_as_module():
    proc = subprocess.run([sys.executable, "-m", "piposer", "models", "verify", "posenet"], capture_output=True, text=True)
    assert proc.returncode == 0 and "posenet: ok" in proc.stdout and "sha256 ee84b06b" in proc.stdout


def test_flip_draws_on_the_mirrored_image(tmp_path):
    """With --flip the poses live in the mirror image, so the annotated output is the mirror image."""
    src = DATA / "coco_dev" / "images" / "000000000785.jpg"
    assert main(["image", str(src), "--out", str(tmp_path), "--flip"]) == 0
    out = cv2.imread(str(tmp_path / "000000000785.jpg")).astype(float)
    original = cv2.imread(str(src)).astype(float)
    assert abs(out - cv2.flip(original, 1)).mean() < 0.5 * abs(out - original).mean()
    nose = json.loads((tmp_path / "000000000785.json").read_text())["poses"][0]["keypoints"]["nose"]
    assert main(["image", str(src), "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "000000000785.json").read_text())["poses"][0]["keypoints"]["nose"]
    assert nose["x"] == pytest.approx(640 - plain["x"], abs=10)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_config_numbers_are_refused(tmp_path, capsys, value):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[tracking]\nmax_age = {value}\n")
    assert main(["config", "check", "--config", str(cfg)]) == 2
    assert "tracking.max_age must be a finite number" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_made_is_a_one_line_error(capsys):
    assert main(["image", str(IMAGE2), "--out", "/proc/piposer-cannot-write-here"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("piposer: error: ") and "/proc/piposer-cannot-write-here" in err


def test_bench_repeat_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--images", str(DATA), "--repeat", "0"])
    assert exit_.value.code == 2 and "must be at least 1, not 0" in capsys.readouterr().err
