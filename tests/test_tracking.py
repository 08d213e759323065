"""The OKS tracker: on real PoseNet detections from the real videos, and on poses moved by known amounts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import DATA
from piposer import config
from piposer.errors import PiposerError
from piposer.estimators import ModelSettings
from piposer.estimators.posenet import PoseNetEstimator
from piposer.sources import SourceSettings, open_source
from piposer.tracking import Tracker, TrackingSettings, oks_matrix, sigmas
from piposer.types import BLAZEPOSE33, COCO17, Pose, make_pose


@pytest.fixture(scope="module")
def pair_poses() -> list[list[Pose]]:
    """PoseNet poses (score >= 0.3) of every frame of room_pair.mp4: two people, both in view throughout."""
    estimator = PoseNetEstimator(ModelSettings())
    source = open_source(SourceSettings(source=str(DATA / "video" / "room_pair.mp4")), log=lambda _: None)
    frames = []
    while (frame := source.read()) is not None:
        frames.append([p for p in estimator.estimate(frame) if p.score >= 0.3])
    return frames


def fresh(poses: list[Pose]) -> list[Pose]:
    return [replace(p, track_id=None) for p in poses]


def moved(pose: Pose, dx: float, dy: float = 0.0) -> Pose:
    xy = pose.xy() + (dx, dy)
    return make_pose(pose.layout, xy, pose.scores(), (1920, 1080), 0.3, pose.score)


def test_two_people_keep_their_ids_through_the_real_video(pair_poses):
    assert sum(len(p) == 2 for p in pair_poses) >= 40  # both people found in most frames; the gaps must not cost ids
    tracker = Tracker()
    ids_per_frame = [[p.track_id for p in tracker.update(fresh(poses), i / 28.0)] for i, poses in enumerate(pair_poses)]
    assert_each_id_keeps_its_side(pair_poses, ids_per_frame)


def assert_each_id_keeps_its_side(frames: list[list[Pose]], ids_per_frame: list[list[int]]) -> None:
    """Exactly ids 1 and 2, each always on its own side of the room (the two never cross in this clip),
    so ids swapping between the people fails."""
    side: dict[int, list[float]] = {}
    for poses, ids in zip(frames, ids_per_frame):
        for pose, track_id in zip(poses, ids):
            side.setdefault(track_id, []).append((pose.box.x0 + pose.box.x1) / 2)
    assert set(side) == {1, 2}
    left, right = sorted(side, key=lambda t: np.median(side[t]))
    assert max(side[left]) < min(side[right])


def test_ids_survive_a_slow_pi_frame_rate(pair_poses):
    tracker = Tracker()
    frames = pair_poses[::4]  # 7 fps
    ids_per_frame = [[p.track_id for p in tracker.update(fresh(poses), 4 * i / 28.0)] for i, poses in enumerate(frames)]
    assert_each_id_keeps_its_side(frames, ids_per_frame)


def test_ids_follow_people_not_list_order(pair_poses):
    tracker = Tracker()
    a, b = tracker.update(fresh(pair_poses[0]), 0.0)
    swapped = tracker.update([moved(pair_poses[0][1], 5), moved(pair_poses[0][0], -5)], 0.1)
    assert [p.track_id for p in swapped] == [b.track_id, a.track_id]


def test_max_age_forgets_lost_people(pair_poses):
    settings = TrackingSettings(max_age=0.5)
    tracker = Tracker(settings)
    person = pair_poses[0][0]
    first = tracker.update(fresh([person]), 0.0)[0].track_id
    assert tracker.update([], 0.3) == []
    assert tracker.update(fresh([person]), 0.45)[0].track_id == first  # gone 0.45 s: still known
    assert tracker.update(fresh([person]), 1.0)[0].track_id == first + 1  # gone 0.55 s: a new person
    assert len(tracker.tracks) == 1


def test_far_jump_is_a_new_person(pair_poses):
    tracker = Tracker()
    person = pair_poses[0][0]
    first = tracker.update(fresh([person]), 0.0)[0].track_id
    assert tracker.update([moved(person, 15)], 0.04)[0].track_id == first
    jump = person.box.width * 2
    assert tracker.update([moved(person, 15 + jump)], 0.08)[0].track_id != first


def test_disabled_tracking_leaves_ids_unset(pair_poses):
    poses = Tracker(TrackingSettings(enabled=False)).update(fresh(pair_poses[0]), 0.0)
    assert [p.track_id for p in poses] == [None, None]


def test_oks_matrix_values():
    rng = np.random.default_rng(0)
    xy = rng.uniform(100, 300, (1, 17, 2))
    seen = np.ones((1, 17), bool)
    area = np.array([200.0 * 200.0])
    sigma = sigmas(COCO17)
    assert oks_matrix(xy, seen, area, xy, seen, area, sigma)[0, 0] == pytest.approx(1.0)
    # a shift of d pixels on every point: mean of exp(-d^2 / (2 * area * (2 sigma)^2))
    shifted = xy + (10.0, 0.0)
    expected = np.mean(np.exp(-100.0 / (2 * 40000.0 * (2 * sigma) ** 2)))
    assert oks_matrix(xy, seen, area, shifted, seen, area, sigma)[0, 0] == pytest.approx(expected)
    # no keypoint seen in both: no similarity at all
    assert oks_matrix(xy, seen, area, xy, ~seen, area, sigma)[0, 0] == 0.0


def test_blazepose_layout_has_a_sigma_per_keypoint():
    s = sigmas(BLAZEPOSE33)
    assert s.shape == (33,)
    assert s[BLAZEPOSE33.index("left_hip")] == pytest.approx(0.107)
    assert s[BLAZEPOSE33.index("right_heel")] == pytest.approx(0.089)


@pytest.mark.parametrize("table, message", [
    ({"max_age": 0}, "tracking.max_age must be > 0"),
    ({"min_similarity": 1.5}, "tracking.min_similarity must be within 0..1"),
    ({"enabled": "yes"}, "tracking.enabled must be bool"),
])
def test_settings_are_validated_with_the_key_named(table, message):
    with pytest.raises(PiposerError, match=message):
        config.build(config.Config, {"tracking": table}, "")
