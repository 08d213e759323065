"""Hands attached to bodies on real photos: `[hands] bodies` runs a body model beside the hand models and each
hand names the person whose wrist it is on and that wrist's side, checked against the photos' COCO annotations."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import DATA
from piposer import config
from piposer.errors import ConfigError
from piposer.estimators import create
from piposer.estimators.bodyhands import attach
from piposer.types import pose_to_dict

pytestmark = pytest.mark.usefixtures("hand_models")

GO = ("pose_extra", "aic_fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg")  # a Go player, both hands on the table
SOFA = ("coco_dev", "000000109313.jpg")                                  # one person, both hands up


def estimator(bodies: str):
    cfg = config.Config()
    cfg.model.name, cfg.hands.bodies, cfg.hands.num_hands = "hands-full", bodies, 4
    return create(cfg, running_mode="image")


def annotated(folder: str, name: str) -> list[np.ndarray]:
    """The photo's annotated people as (17, 3) COCO keypoints."""
    data = json.loads((DATA / folder / "person_keypoints.json").read_text())
    image = next(i["id"] for i in data["images"] if i["file_name"] == name)
    return [np.array(a["keypoints"], float).reshape(17, 3) for a in data["annotations"] if a["image_id"] == image]


def run(bodies: str, photo):
    with estimator(bodies) as e:
        hands = e.estimate(cv2.imread(str(DATA / photo[0] / "images" / photo[1])))
        return hands, e.last_bodies


@pytest.mark.parametrize("bodies", ["movenet-multipose", "posenet"])
def test_both_hands_of_the_person_on_the_sofa_are_theirs_on_the_annotated_sides(bodies):
    hands, people = run(bodies, SOFA)
    (person,) = [p for p in people if p.score >= 0.5]
    (truth,) = annotated(*SOFA)
    assert len(hands) == 2 and all(h.handedness is not None for h in hands)
    for hand in hands:
        side = min(("left", 9), ("right", 10), key=lambda s: np.hypot(*(truth[s[1], :2] - (hand["wrist"].x, hand["wrist"].y))))[0]
        assert (hand.person, hand.side) == (person.track_id, side)
    assert sorted(h.side for h in hands) == ["left", "right"]


@pytest.mark.parametrize("bodies", ["movenet-multipose", "posenet"])
def test_the_go_players_stone_hand_is_his_right_and_the_resting_one_has_no_body_wrist(bodies):
    """Measured: neither body model detects the player's left wrist (resting on the table beside the bowl),
    so that hand stays unattached rather than being given to the nearest detected wrist."""
    hands, people = run(bodies, GO)
    def gap(hand, k, i):
        return np.hypot(*(k[i, :2] - (hand["wrist"].x, hand["wrist"].y)))
    # the annotated player (of three people) is the one whose right wrist holds a stone: one of the hands is on it
    player = min(annotated(*GO), key=lambda k: min(gap(h, k, 10) for h in hands))
    stone = min(hands, key=lambda h: gap(h, player, 10))
    (resting,) = [h for h in hands if h is not stone]
    assert gap(stone, player, 10) < 10 and gap(resting, player, 9) < 10  # both hands are the player's
    body = next(p for p in people if p.track_id == stone.person)
    assert stone.side == "right"
    assert np.hypot(*(player[6, :2] - (body["right_shoulder"].x, body["right_shoulder"].y))) < 30  # the player
    assert (resting.person, resting.side) == (None, None)


def test_the_payload_names_person_and_side():
    hands, _ = run("movenet-multipose", SOFA)
    data = pose_to_dict(hands[0])
    assert (data["person"], data["side"]) == (hands[0].person, hands[0].side)
    assert data["layout"] == "hand21" and data["handedness"] == hands[0].handedness


def test_one_wrist_takes_one_hand_and_a_far_hand_takes_none():
    hands, people = run("movenet-multipose", SOFA)
    hand = hands[0]
    assert attach(people, [hand, hand]).count(None) == 1  # the same hand twice: the wrist goes to one of them
    assert attach(people, [hand], reach=0.001) == [None]
    assert attach([], [hand]) == [None]


def test_a_body_model_that_is_not_one_is_a_config_error():
    with pytest.raises(ConfigError, match="hands.bodies = 'hands-lite' is not a body pose model"):
        estimator("hands-lite")


def test_a_rule_names_the_left_hand_of_the_person_on_the_sofa():
    """`person` and `side` conditions pick one hand of one body, on the real photo's attached hands."""
    from piposer.rules.engine import Scene, compile_condition
    from piposer.rules.settings import Condition

    hands, people = run("movenet-multipose", SOFA)
    (person,) = [p for p in people if p.score >= 0.5]
    layout = hands[0].layout

    def truth(cond: Condition) -> list[bool]:
        return compile_condition(cond, layout, 0.0)(Scene(hands, layout), 0.0)

    left_of_person = Condition(all=[Condition(person=person.track_id), Condition(side="left")])
    assert truth(left_of_person) == [h.side == "left" for h in hands] and sum(truth(left_of_person)) == 1
    assert truth(Condition(person=person.track_id + 1)) == [False, False]


def test_a_person_condition_needs_a_track_id():
    from piposer.rules.settings import Condition, RuleSettings

    with pytest.raises(ValueError, match=r"rule .r.: when.person must be a track id \(>= 1\), not 0"):
        RuleSettings(name="r", when=Condition(person=0))
