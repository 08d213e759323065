"""Taught poses end to end on real footage: `piposer teach` from a real clip, then the classifier, the
`pose = ...` rule and the payload on frames of that clip it was not taught from; and the poses file's
commands and faults."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from commandline import assert_one_line_error, piposer
from conftest import DATA
from piposer import config
from piposer.rules import RulesEngine
from piposer.rules.library import PoseLibrary, PoseSettings
from piposer.rules.poses import PoseStage
from piposer.rules.settings import Condition, RuleSettings
from piposer.sinks.payloads import poses_payload
from piposer.tools.teach import open_pipeline
from piposer.types import Frame

ROOM = DATA / "video" / "room_single.avi"  # NTU "drink water": she stands (0-30), then holds the cup at her mouth (45-100)
FPS = 30.0


@pytest.fixture(scope="module")
def taught(tmp_path_factory) -> Path:
    """A poses file taught with the real command: 'standing' from 0.0-0.7 s, 'drinking' from 1.5-2.3 s."""
    path = tmp_path_factory.mktemp("poses") / "poses.json"
    for label, delay, seconds in (("standing", 0.0, 0.7), ("drinking", 1.5, 0.8)):
        result = piposer("teach", label, "--source", ROOM, "--seconds", seconds, "--delay", delay,
                         "--interval", 0.1, "--poses", path)
        assert result.returncode == 0, result.stderr
        assert f"taught '{label}'" in result.stdout
    return path


@pytest.fixture(scope="module")
def labelled_run(taught) -> list[tuple[int, list]]:
    """(frame index, poses with labels) for the whole clip through the appliance's pipeline."""
    cfg = config.Config()
    stage = PoseStage(PoseSettings(file=str(taught)))
    frames = []
    with open_pipeline(cfg, str(ROOM), stages=[stage]) as pipeline:
        while (frame := pipeline.read(timeout=1.0)) is not None:
            frames.append((frame.index, pipeline.process(frame)))
    return frames


def test_the_file_holds_what_was_taught(taught):
    data = json.loads(taught.read_text())
    assert data["format"] == "piposer-poses" and data["version"] == 2
    counts = Counter(ex["label"] for ex in data["examples"])
    assert set(counts) == {"standing", "drinking"} and min(counts.values()) >= 6
    assert [p.name for p in taught.parent.iterdir()] == ["poses.json"]  # written atomically, no temp file left


def test_held_out_frames_of_the_same_scene_get_the_right_label(labelled_run):
    """Frames 24-33 (standing) and 72-100 (drinking) were not taught from (the examples are frames 0-20
    and 45-69, every third): at least 80 % of them get the right label."""
    def share(first: int, last: int, label: str) -> float:
        held = [poses[0].label for i, poses in labelled_run if first <= i <= last and poses]
        return sum(lab == label for lab in held) / len(held)

    assert share(24, 33, "standing") >= 0.8
    assert share(72, 100, "drinking") >= 0.8


def test_a_pose_rule_rises_once_when_she_drinks(labelled_run):
    engine = RulesEngine([RuleSettings(name="sip", when=Condition(pose="drinking"))], clock=lambda: 0.0)
    edges = []
    for index, poses in labelled_run:
        for outcome in engine.update(poses, now=index / FPS)[0]:
            edges += [(index, str(edge)) for edge, _ in outcome.edges]
    assert [e for _, e in edges] == ["rising"]
    assert 35 <= edges[0][0] <= 60  # the cup reaches her mouth at about frame 40


def test_labels_reach_the_payload(labelled_run):
    index, poses = next((i, p) for i, p in labelled_run if i == 90)
    (person,) = poses_payload(Frame(np.zeros((1080, 1920, 3), np.uint8), index, 0.0), poses, "posenet")["poses"]
    assert person["label"] == "drinking" and person["label_confidence"] >= 0.6


def test_list_and_remove(tmp_path, taught):
    copy = tmp_path / "poses.json"
    copy.write_bytes(taught.read_bytes())
    listed = piposer("poses", "list", "--poses", copy)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["standing", "drinking"]
    removed = piposer("poses", "remove", "drinking", "--poses", copy)
    assert removed.returncode == 0 and "removed 'drinking'" in removed.stdout
    assert PoseLibrary.load(copy).labels().keys() == {"standing"}


def test_removing_an_unknown_label_is_one_line_and_changes_nothing(tmp_path, taught):
    copy = tmp_path / "poses.json"
    copy.write_bytes(taught.read_bytes())
    before = copy.read_bytes()
    assert_one_line_error(piposer("poses", "remove", "waving", "--poses", copy), "waving")
    assert copy.read_bytes() == before


@pytest.mark.parametrize("text, names", [
    ("{not json", ["poses.json"]),
    ('{"format": "piposer-poses", "version": 99, "examples": []}', ["version 99"]),
])
def test_a_damaged_poses_file_is_one_line_naming_it(tmp_path, text, names):
    path = tmp_path / "poses.json"
    path.write_text(text)
    assert_one_line_error(piposer("poses", "list", "--poses", path), *names)


def test_teaching_from_a_clip_without_people_teaches_nothing(tmp_path):
    path = tmp_path / "poses.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    cv2.imwrite(str(empty / "wall.png"), np.full((240, 320, 3), 90, np.uint8))
    assert_one_line_error(piposer("teach", "standing", "--source", empty, "--seconds", 1, "--poses", path),
                          "nothing taught")
    assert not path.exists()
