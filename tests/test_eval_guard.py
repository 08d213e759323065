"""Every pose model `piposer models list` offers finds people: COCO keypoint AP on coco_dev through the real
`piposer eval`, each at least its measured figure less a small margin (issue 14: a listed model that found
nobody, posenet-pinto-101 with AP 0.000, went unnoticed)."""

from __future__ import annotations

from conftest import DATA
from piposer.modelstore import ModelStore
from piposer.tools.cli import main

COCO = DATA / "coco_dev" / "person_keypoints.json"
POSE_FAMILIES = ("posenet", "movenet", "blazepose")
MEASURED = {  # COCO AP on coco_dev, 2026-12-03 (BENCHMARKS.md)
    "posenet": 0.228, "posenet-stride8": 0.268, "posenet-stride32": 0.197,
    "posenet-coral-353x481": 0.312, "posenet-coral-481x641": 0.369, "movenet-multipose": 0.359,
    "movenet-lightning": 0.111, "movenet-lightning-int8": 0.090, "movenet-thunder": 0.187,  # one person per photo
    "blazepose-lite": 0.144, "blazepose-full": 0.183, "blazepose-heavy": 0.200,
}


def test_every_listed_pose_model_meets_its_measured_ap(capsys):
    listed = [name for name, info in ModelStore.from_environment().manifest.items() if info.family in POSE_FAMILIES]
    assert sorted(listed) == sorted(MEASURED)  # a new model needs its figure here
    argv = ["eval", "--data", str(COCO)] + [arg for name in listed for arg in ("--model", name)]
    assert main(argv) == 0
    rows = {line.split()[0]: float(line.split()[1]) for line in capsys.readouterr().out.splitlines()[2:]}
    low = {name: ap for name, ap in rows.items() if ap < MEASURED[name] - 0.01}
    assert not low and len(rows) == len(listed), (low, rows)


def test_blazepose_for_groups_meets_its_measured_ap(capsys):
    # MoveNet MultiPose proposing people to BlazePose full (issue 19): measured 0.356 against 0.183 with BlazePose's
    # own detector, 0.330 since MoveNet's crop is snapped to whole pixels; on these 18 photos it swings from 0.330
    # to 0.378 with MoveNet's letterbox moved by a third of a pixel (BENCHMARKS.md, issue 14 fourth part)
    assert main(["eval", "--data", str(COCO), "--model", 'blazepose-full:person_detector="movenet",num_poses=10']) == 0
    (row,) = capsys.readouterr().out.splitlines()[2:]
    assert float(row.split()[1]) >= 0.330 - 0.01, row


def test_eval_rows_take_settings_and_report_small_people_and_time(capsys):
    argv = ["eval", "--data", str(COCO), "--model", "posenet", "--model", "posenet:long_side=481"]
    assert main(argv) == 0
    header, *rows = capsys.readouterr().out.splitlines()[1:]
    assert header.split() == ["model", "AP", "AP50", "APm", "APl", "AR", "R<100", "ms"]
    table = {row.split()[0]: [float(v) for v in row.split()[1:]] for row in rows}
    assert table["posenet:long_side=481"][0] > table["posenet"][0] + 0.05  # measured 0.315 against 0.228
    assert all(abs(r[5] - 1 / 6) < 1e-3 and 1 < r[6] < 1000 for r in table.values())  # 1 of coco_dev's 6 people under 100 px


def test_eval_names_a_bad_row_setting(capsys):
    assert main(["eval", "--data", str(COCO), "--model", "posenet:long_side=480"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "posenet.long_side = 480: long_side-1 must be a multiple of the output stride 16" in line
