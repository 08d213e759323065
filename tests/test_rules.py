"""The rules engine on synthetic pose sequences: conditions, timing, per-person state, validation."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest

from piposer.config import build
from piposer.errors import PiposerError
from piposer.rules import FollowSettings, Follower, RuleSettings, RulesEngine, Scene, body_sizes
from piposer.types import BLAZEPOSE33

from rules_poses import STANDING, Clock, hand_raised, pose


def rule(toml: str) -> RuleSettings:
    return build(RuleSettings, tomllib.loads(toml), "rules[0]")


def engine(*tomls: str, clock: Clock | None = None) -> tuple[RulesEngine, Clock]:
    clock = clock or Clock()
    return RulesEngine([rule(t) for t in tomls], clock), clock


def run(eng: RulesEngine, clock: Clock, frames: list[list], dt: float = 0.25) -> list[list[tuple]]:
    """Feed one list of poses per frame, `dt` apart (a power of two, so times add up exactly); returns each frame's edges as (rule, edge, person)."""
    out = []
    for poses in frames:
        outcomes, _ = eng.update(poses)
        out.append([(o.rule.name, e, p) for o in outcomes for e, p in o.edges])
        clock.advance(dt)
    return out


def active(eng: RulesEngine, poses: list) -> dict[str, bool]:
    outcomes, _ = eng.update(poses)
    return {o.rule.name: o.active for o in outcomes}


RAISED = 'name = "raised"\nwhen = { above = { a = "left_wrist", b = "nose" } }'


def test_hand_raised_rises_and_falls():
    eng, clock = engine(RAISED)
    edges = run(eng, clock, [[pose()], [hand_raised()], [hand_raised()], [pose()], []])
    assert edges == [[], [("raised", "rising", None)], [], [("raised", "falling", None)], []]


def test_undetected_keypoint_never_satisfies_a_condition():
    eng, _ = engine(RAISED)
    assert active(eng, [hand_raised(missing=("left_wrist",))]) == {"raised": False}
    assert active(eng, [hand_raised(missing=("nose",))]) == {"raised": False}
    assert active(eng, [hand_raised()]) == {"raised": True}


def test_min_score_is_respected():
    eng, _ = engine(RAISED + "\nmin_score = 0.8")
    assert active(eng, [hand_raised(score=0.7)]) == {"raised": False}
    assert active(eng, [hand_raised(score=0.85)]) == {"raised": True}


@pytest.mark.parametrize("relation, moved, expected", [
    ("left_of", {"left_wrist": (0.2, 0.5)}, True),   # image left: smaller x
    ("left_of", {}, False),
    ("right_of", {}, True),                          # the person's left wrist is on the image right
    ("below", {}, True),
    ("below", {"left_wrist": (0.6, 0.1)}, False),
])
def test_relations_use_image_directions(relation, moved, expected):
    eng, _ = engine(f'name = "r"\nwhen = {{ {relation} = {{ a = "left_wrist", b = "nose" }} }}')
    assert active(eng, [pose(**moved)]) == {"r": expected}


def test_relation_margin_is_in_body_sizes():
    # Body size here: torso (0.32 -> 0.60 of 480 px) = 134.4 px. Wrist 0.08 vs nose 0.20 = 57.6 px above.
    eng, _ = engine(RAISED.replace("}", ', margin = 0.4 }', 1), RAISED.replace('"raised"', '"raised_high"').replace("}", ', margin = 0.5 }', 1))
    assert active(eng, [hand_raised()]) == {"raised": True, "raised_high": False}


def test_zone_rect_is_normalized_and_survives_a_resolution_change():
    eng, _ = engine('name = "left_side"\nwhen = { zone = { keypoint = "nose", rect = [0.0, 0.0, 0.4, 1.0] } }')
    for size in ((640, 480), (1920, 1080), (300, 300)):
        assert active(eng, [pose(size=size, shift=(-0.2, 0))]) == {"left_side": True}, size
        assert active(eng, [pose(size=size)]) == {"left_side": False}, size


def test_zone_polygon_concave():
    # An L shape: the notch at top right (x > 0.5, y < 0.5) is outside.
    table = """name = "l"
when = { zone = { keypoint = "nose", polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]] } }"""
    eng, _ = engine(table)
    expectations = {(0.25, 0.25): True, (0.75, 0.25): False, (0.75, 0.75): True, (0.25, 0.9): True}
    for (x, y), inside in expectations.items():
        assert active(eng, [pose({"nose": (x, y)})]) == {"l": inside}, (x, y)


def test_near_is_relative_to_body_size():
    table = 'name = "clap"\nwhen = { near = { a = "left_wrist", b = "right_wrist", within = 0.3 } }'
    eng, _ = engine(table)
    together = dict(left_wrist=(0.51, 0.40), right_wrist=(0.49, 0.40))
    assert active(eng, [pose()]) == {"clap": False}
    assert active(eng, [pose(**together)]) == {"clap": True}
    # The same gesture far from the camera (everything at a quarter of the size) still counts ...
    small = {k: (0.5 + (x - 0.5) / 4, 0.5 + (y - 0.5) / 4) for k, (x, y) in {**STANDING, **together}.items()}
    assert active(eng, [pose(small)]) == {"clap": True}
    # ... and wrists 0.02 apart are far apart for a tiny person.
    tiny_apart = {**small, "left_wrist": (0.51, 0.45), "right_wrist": (0.49, 0.45)}
    assert active(eng, [pose(tiny_apart)]) == {"clap": False}


def test_body_size_uses_torso_or_shoulders_and_is_nan_without_shoulders():
    side_view = pose(left_shoulder=(0.5, 0.32), right_shoulder=(0.5, 0.32))  # shoulders overlap
    close_up = pose(missing=("left_hip", "right_hip"))
    no_shoulders = pose(missing=("left_shoulder", "right_shoulder"))
    s = Scene([side_view, close_up, no_shoulders], side_view.layout)
    sizes = body_sizes(s)
    assert sizes[0] == pytest.approx(0.28 * 480)                # torso length
    assert sizes[1] == pytest.approx(0.12 * 640)                # shoulder width
    assert math.isnan(sizes[2])


def test_people_count():
    eng, _ = engine('name = "crowd"\nwhen = { people = 2 }')
    assert [active(eng, p)["crowd"] for p in ([], [pose()], [pose(), pose()], [pose()] * 3)] == [False, False, True, True]


def test_people_count_is_debounced_with_count_hold():
    """[tracking] count_hold: the count a `people` rule sees changes only once the new count holds."""
    clock = Clock()
    eng = RulesEngine([rule('name = "pair"\nwhen = { people = 2 }')], clock, count_hold=1.0)
    two, one = [pose(), pose()], [pose()]
    frames = [two, one, two, one, one, one, one, one, []]  # 0.25 s apart: a one-frame flicker, then a real drop
    edges = run(eng, clock, frames)
    assert [e for frame in edges for e in frame] == [("pair", "rising", None), ("pair", "falling", None)]
    assert edges[7] == [("pair", "falling", None)]  # the drop seen at 0.75 s has held for 1 s at 1.75 s


def test_all_and_any_combine():
    both = """name = "both"
when = { all = [ { above = { a = "left_wrist", b = "nose" } }, { above = { a = "right_wrist", b = "nose" } } ] }"""
    either = both.replace('"both"', '"either"').replace("all", "any")
    eng, _ = engine(both, either)
    two_up = hand_raised(right_wrist=(0.40, 0.08))
    assert active(eng, [pose()]) == {"both": False, "either": False}
    assert active(eng, [hand_raised()]) == {"both": False, "either": True}
    assert active(eng, [two_up]) == {"both": True, "either": True}


def test_all_is_per_person_not_across_people():
    # One person raises the left hand, another the right: nobody raises both.
    both = """name = "both"
when = { all = [ { above = { a = "left_wrist", b = "nose" } }, { above = { a = "right_wrist", b = "nose" } } ] }"""
    eng, _ = engine(both)
    assert active(eng, [hand_raised(), pose(right_wrist=(0.40, 0.08))]) == {"both": False}


def test_held_needs_the_condition_for_the_whole_time():
    table = """name = "held"
when = { held = { seconds = 1.25, when = { above = { a = "left_wrist", b = "nose" } } } }"""
    eng, clock = engine(table)
    frames = [[hand_raised()]] * 3 + [[pose()]] + [[hand_raised()]] * 7
    edges = run(eng, clock, frames)
    # The break at frame 3 restarts the count: rising 1.25 s after frame 4.
    assert [i for i, e in enumerate(edges) if e] == [9]
    assert edges[9] == [("held", "rising", None)]


def test_held_restarts_when_nobody_is_in_view():
    table = """name = "held"
when = { held = { seconds = 0.75, when = { above = { a = "left_wrist", b = "nose" } } } }"""
    eng, clock = engine(table)
    edges = run(eng, clock, [[hand_raised()]] * 2 + [[]] + [[hand_raised()]] * 4)
    assert [i for i, e in enumerate(edges) if e] == [6]  # 3 frames after the gap, not at frame 3


def test_held_inside_all_counts_per_person():
    table = """name = "waiting"
per_person = true
when = { all = [ { zone = { keypoint = "nose", rect = [0.0, 0.0, 1.0, 1.0] } },
                 { held = { seconds = 0.75, when = { above = { a = "left_wrist", b = "nose" } } } } ] }"""
    eng, clock = engine(table)
    # Person 1 raises a hand at frame 0, person 2 at frame 2: each rises 0.75 s (3 frames) later.
    frames = [[hand_raised(track_id=1), pose(track_id=2)]] * 2 + [[hand_raised(track_id=1), hand_raised(track_id=2)]] * 4
    edges = run(eng, clock, frames)
    assert edges == [[], [], [], [("waiting", "rising", 1)], [], [("waiting", "rising", 2)]]


def test_activation_and_release_delays_stop_flicker():
    eng, clock = engine(RAISED + "\nactivate_after = 0.75\nrelease_after = 0.75")
    up, down = [hand_raised()], [pose()]
    # Flicker (up/down every frame) never activates; 4 steady frames do; short dropouts don't release.
    frames = [up, down, up, down, up, up, up, up, down, down, up, down, down, down, down, down]
    edges = run(eng, clock, frames)
    assert [(i, e) for i, es in enumerate(edges) for e in es] == [
        (7, ("raised", "rising", None)),     # up since frame 4, 3 frames later
        (14, ("raised", "falling", None)),   # down since frame 11, 3 frames later
    ]


def test_cooldown_between_rising_edges():
    eng, clock = engine(RAISED + "\ncooldown = 2.5")
    up, down = [hand_raised()], [pose()]
    frames = [up, down] * 8
    edges = run(eng, clock, frames)
    rises = [i for i, es in enumerate(edges) for e in es if e[1] == "rising"]
    falls = [i for i, es in enumerate(edges) for e in es if e[1] == "falling"]
    assert rises == [0, 10]           # 2.5 s apart, the ups in between are ignored
    assert falls == [1, 11]


def test_per_person_state_and_edges_by_track_id():
    table = RAISED + "\nper_person = true\nrelease_after = 0.5"
    eng, clock = engine(table)
    frames = [
        [pose(track_id=1), pose(track_id=2)],
        [hand_raised(track_id=1), pose(track_id=2)],
        [hand_raised(track_id=1), hand_raised(track_id=2)],
        [pose(track_id=1), hand_raised(track_id=2)],        # 1 drops: release pending
        [pose(track_id=1)],                                 # 2 leaves the picture
        [pose(track_id=1)],
        [pose(track_id=1)],
    ]
    edges = run(eng, clock, frames)
    assert edges == [
        [], [("raised", "rising", 1)], [("raised", "rising", 2)], [], [],
        [("raised", "falling", 1)], [("raised", "falling", 2)],
    ]
    # Once released and gone, a person leaves no state behind.
    assert set(eng.rules[0].triggers) == {1}


def test_any_person_rule_stays_active_while_anyone_satisfies_it():
    eng, clock = engine(RAISED)
    frames = [[hand_raised(track_id=1), pose(track_id=2)], [pose(track_id=1), hand_raised(track_id=2)], [pose(track_id=2)]]
    assert run(eng, clock, frames) == [[("raised", "rising", None)], [], [("raised", "falling", None)]]


FOLLOW = '\nactions = [ { output = "dimmer", mode = "follow", follow = { keypoint = "left_wrist" } } ]'


def test_subject_is_the_best_scoring_matching_pose():
    eng, _ = engine(RAISED + FOLLOW)
    weak, strong = hand_raised(score=0.6, track_id=1), hand_raised(score=0.9, track_id=2)
    outcomes, _ = eng.update([weak, pose(score=0.95), strong])
    assert outcomes[0].subject is strong


def test_per_person_subject_is_an_active_person():
    eng, clock = engine(RAISED + FOLLOW + "\nper_person = true\nactivate_after = 0.25")
    first = hand_raised(score=0.6, track_id=1)
    assert eng.update([first])[0][0].subject is None        # not active yet
    clock.advance(0.25)
    late = hand_raised(score=0.9, track_id=2)                # better score, but not active yet
    assert eng.update([first, late])[0][0].subject is first


def test_a_failing_rule_is_disabled_and_the_others_keep_running():
    # left_index exists only in BlazePose: valid config, but a PoseNet (COCO-17) pose cannot satisfy it.
    blaze_only = 'name = "pointing"\nwhen = { above = { a = "left_index", b = "nose" } }'
    eng, clock = engine(blaze_only, RAISED)
    outcomes, failed = eng.update([hand_raised()])
    assert [o.rule.name for o in outcomes] == ["raised"] and outcomes[0].active
    assert [(r.name, msg) for r, msg in failed] == [("pointing", "keypoint 'left_index' is not in the model's coco17 layout")]
    outcomes, failed = eng.update([pose()])
    assert failed == [] and [o.rule.name for o in outcomes] == ["raised"]
    assert "pointing" in eng.errors


def test_blazepose_layout_works_with_coco_names():
    eng, _ = engine(RAISED)
    points = {"nose": (0.5, 0.2), "left_wrist": (0.6, 0.1)}
    assert active(eng, [pose(points, layout=BLAZEPOSE33)]) == {"raised": True}


def test_follower_maps_clamps_and_smooths():
    f = Follower(FollowSettings(keypoint="left_wrist", axis="y", low=0.8, high=0.2, smooth=0.0), min_score=0.0)
    assert f.update(pose(left_wrist=(0.6, 0.5)), 0.0) == pytest.approx(0.5)
    assert f.update(pose(left_wrist=(0.6, 0.05)), 0.1) == pytest.approx(1.0)   # clamped
    assert f.update(pose(left_wrist=(0.6, 0.95)), 0.2) == pytest.approx(0.0)
    assert f.update(pose(missing=("left_wrist",)), 0.3) == pytest.approx(0.0)  # unseen: keeps the last value
    smooth = Follower(FollowSettings(keypoint="left_wrist", low=0.8, high=0.2, smooth=1.0), min_score=0.0)
    smooth.update(pose(left_wrist=(0.6, 0.8)), 0.0)
    # One time constant later it has moved 1 - 1/e of the way to the target.
    assert smooth.update(pose(left_wrist=(0.6, 0.2)), 1.0) == pytest.approx(1 - np.exp(-1))


def test_duplicate_rule_names_are_rejected():
    with pytest.raises(PiposerError, match="two rules are named 'raised'"):
        engine(RAISED, RAISED)


@pytest.mark.parametrize("table, message", [
    ('when = { people = 1 }', "rules: every rule needs a name"),
    ('name = "x"', "rule 'x': when needs exactly one of people, zone"),
    ('name = "x"\nwhen = { people = 1, zone = { rect = [0, 0, 1, 1] } }', r"rule 'x': when needs exactly one .* \(got people, zone\)"),
    ('name = "x"\nwhen = { zone = { rect = [0, 0, 1.5, 1] } }', r"rule 'x': when.zone.rect must be \[x0, y0, x1, y1\] within 0..1"),
    ('name = "x"\nwhen = { zone = { rect = [0, 0, 1, 1], polygon = [[0, 0], [1, 0], [1, 1]] } }', "when.zone needs exactly one of rect"),
    ('name = "x"\nwhen = { zone = { polygon = [[0, 0], [1, 0]] } }', "when.zone.polygon needs at least 3 points"),
    ('name = "x"\nwhen = { zone = { polygon = [[0, 0], [1, 0], [1, 2]] } }', r"when.zone.polygon\[2\] must be \[x, y\] within 0..1"),
    ('name = "x"\nwhen = { any = [ { people = 1 }, { above = { a = "left_hand", b = "nose" } } ] }', r"when.any\[1\].above.a = 'left_hand' is not a keypoint name"),
    ('name = "x"\nwhen = { near = { a = "nose", b = "nose" } }', "when.near: a and b are both 'nose'"),
    ('name = "x"\nwhen = { near = { a = "nose", b = "left_wrist", within = 0 } }', "when.near.within must be > 0"),
    ('name = "x"\nwhen = { held = { seconds = 2 } }', "when.held.when is missing"),
    ('name = "x"\nwhen = { all = [] }', "when.all must list at least one condition"),
    ('name = "x"\nwhen = { people = 0 }', "when.people must be >= 1"),
    ('name = "x"\nwhen = { people = 1 }\nrelease_after = -1', "rule 'x': release_after must be within 0..inf"),
    ('name = "x"\nwhen = { people = 1 }\nmin_score = 2', "rule 'x': min_score must be within 0..1"),
    ('name = "x"\nwhen = { people = 1 }\nactions = [ { mode = "hold" } ]', r"actions\[0\].output is missing"),
    ('name = "x"\nwhen = { people = 1 }\nactions = [ { output = "a", mode = "follow" } ]', "mode = 'follow' and a follow"),
    ('name = "x"\nwhen = { people = 1 }\nactions = [ { output = "a", seconds = 2 } ]', r"actions\[0\].seconds is only for mode = 'pulse' \(this action is mode = 'hold'\)"),
    ('name = "x"\nwhen = { people = 1 }\nactions = [ { output = "a", mode = "pulse", seconds = 0 } ]', r"actions\[0\].seconds must be > 0"),
    ('name = "x"\nwhen = { people = 1 }\nactions = [ { output = "a", mode = "blink" } ]', r"rules\[0\].actions\[0\].mode = 'blink' is not allowed"),
    ('name = "x"\nwhen = { people = 1 }\nactions = [ { output = "a", mode = "follow", follow = { low = 0.5, high = 0.5 } } ]', "follow: low and high must differ"),
    ('name = "x"\nwhen = { above = { a = "nose", b = "left_wrist", c = 1 } }', r"unknown key 'rules\[0\].when.above.c'"),
    ('name = "x"\nwhen = { people = "two" }', r"rules\[0\].when.people must be int"),
])
def test_config_errors_name_the_key(table, message):
    with pytest.raises(PiposerError, match=message):
        rule(table)
