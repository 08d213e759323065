"""The examples in docs/library.md, run as written on the sample photo and video, with their results checked."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re

from conftest import DATA, ROOT

DOC = ROOT / "docs" / "library.md"
PHOTO = DATA / "tflite_pose_testdata" / "image2.jpeg"
TRUTH = DATA / "tflite_pose_testdata" / "pose_landmark_truth.csv"
VIDEO = DATA / "video" / "room_pair.mp4"


def examples() -> dict[str, str]:
    """Each ```python block under its section heading."""
    text = DOC.read_text()
    found = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        blocks = re.findall(r"```python\n(.*?)```", section, re.S)
        if blocks:
            found[title] = "\n".join(blocks)
    return found


def run_example(title: str, tmp_path) -> tuple[dict, str]:
    (tmp_path / "person.jpg").symlink_to(PHOTO)
    (tmp_path / "walk.mp4").symlink_to(VIDEO)
    namespace: dict = {"__name__": "example"}
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(examples()[title], f"{DOC.name}: {title}", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return namespace, out.getvalue()


def test_the_doc_has_the_three_examples():
    assert list(examples()) == ["Poses in a photo", "A video, frame by frame, with ids", "Your own sink"]


def test_photo_example_finds_the_person_where_the_reference_says(tmp_path):
    namespace, printed = run_example("Poses in a photo", tmp_path)
    (pose,) = namespace["poses"]
    rows = list(csv.reader(TRUTH.open()))
    nose_x, nose_y = (float(v) for v in rows[2][:2])  # row 2 = image2, nose first
    nose = pose["nose"]
    assert abs(nose.x - nose_x) <= 35 and abs(nose.y - nose_y) <= 35  # Google's PoseNet tolerance
    assert printed == f"person scoring {pose.score:.2f}, nose ({nose.x:.0f}, {nose.y:.0f})\n"


def test_video_example_sees_the_two_people_of_the_clip(tmp_path):
    namespace, printed = run_example("A video, frame by frame, with ids", tmp_path)
    assert printed.endswith(" people seen in 60 frames\n")
    assert 2 <= len(namespace["ids_seen"]) <= 3  # two people walk; a brief id split at most
    assert namespace["frame"].index == 59


def test_custom_sink_example_counts_both_people(tmp_path):
    namespace, printed = run_example("Your own sink", tmp_path)
    most = namespace["most"]
    assert most.count == 2 and most.frame is not None
    assert printed.startswith(f"at most 2 people (first in frame {most.frame})\n")
    assert re.fullmatch(r"at most 2 people \(first in frame \d+\)\n[0-9.]+ ms per frame in the sink\n", printed)
