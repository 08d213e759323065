"""Taught hand shapes on real hands: the landmarks of real photos (MediaPipe's hand model on the shared photos)
teach "open" (fingers spread) and "grip" (fingers bent round something); held-out real hands, the same hands
turned, scaled, moved and mirrored, and the model's own landmarks on a photo turned a quarter turn get the
right label; then the stage, its events and `piposer teach` with a hands model."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from commandline import assert_one_line_error, piposer
from conftest import DATA
from piposer import Hands
from piposer.errors import ConfigError
from piposer.rules.library import Example, PoseLibrary, PoseSettings
from piposer.rules.poses import HAND, PoseClassifier, PoseStage, normalize_hand, pose_points
from piposer.types import HAND21, Pose, make_pose

pytestmark = pytest.mark.usefixtures("hand_models")

# (photo, which hand: the one whose wrist is leftmost in the image first), looked at one by one
OPEN = {"taught": [("pose_extra/images/aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", 2),  # spread, on a shirt
                   ("pose_extra/images/ochuman_003896.jpg", 0)],                            # spread, reaching down
        "held_out": [("tflite_pose_testdata/image1.png", 1)]}                             # spread, on her thigh
GRIP = {"taught": [("pose_extra/images/aic_fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg", 0),  # curled, resting
                   ("pose_extra/images/ochuman_000817.jpg", 1)],                            # holding a bag strap
        "held_out": [("coco_dev/images/000000350679.jpg", 0)]}                              # holding a knife
CLOTH = ("coco_dev/images/000000109313.jpg", 1)  # a hand wrapped round a cloth: like neither


@pytest.fixture(scope="module")
def hands():
    """photo -> its hands (hands-full, image mode), leftmost wrist first."""
    estimator = Hands("hands-full", running_mode="image", num_hands=4)
    photos = {p for group in (OPEN, GRIP) for part in group.values() for p, _ in part} | {CLOTH[0]}
    found = {}
    for photo in photos:
        found[photo] = sorted(estimator.estimate(cv2.imread(str(DATA / photo))), key=lambda h: h["wrist"].x)
    return found


def hand(hands, which) -> Pose:
    photo, index = which
    return hands[photo][index]


def moved(pose: Pose, turn: float, scale: float, shift: tuple[float, float], mirror: bool) -> Pose:
    """The hand's landmarks turned by `turn` radians about its wrist, scaled, shifted and optionally mirrored
    (a left hand made of a right one) in a 1000 x 1000 image."""
    xy = pose.xy() - pose.xy()[0]
    c, s = np.cos(turn), np.sin(turn)
    xy = xy @ np.array([[c, s], [-s, c]]) * scale * ([-1, 1] if mirror else [1, 1]) + [500 + shift[0], 500 + shift[1]]
    return make_pose(HAND21, xy, pose.scores(), (1000, 1000), 0.3, pose.score)


COPIES = [(0.5, 1.0, (0, 0), False), (2.0, 0.5, (-200, 100), True), (3.3, 2.0, (150, -80), False),
          (-1.2, 0.8, (30, 40), True)]


def examples(hands, group, label):
    real = [hand(hands, which) for which in group["taught"]]
    return [Example.from_pose(p, label) for p in real + [moved(p, *how) for p in real for how in COPIES]]


@pytest.fixture(scope="module")
def classifier(hands):
    return PoseClassifier(examples(hands, OPEN, "open") + examples(hands, GRIP, "grip"), kind=HAND)


def label_of(classifier, pose: Pose) -> tuple[str | None, float]:
    (scores,) = classifier.scores(pose_points([pose], HAND))
    best = int(np.argmax(scores))
    return (classifier.labels[best], float(scores[best])) if scores[best] > 0 else (None, 0.0)


def test_the_normalized_hand_has_its_wrist_at_the_origin_and_its_middle_knuckle_straight_up(hands):
    real = hand(hands, OPEN["held_out"][0])
    turned = moved(real, 1.0, 3.0, (100, 100), True)
    a, b = (normalize_hand(pose_points([p], HAND))[0] for p in (real, turned))
    np.testing.assert_allclose(a[[0, 9]], [[0, 0], [0, -1]], atol=1e-9)
    np.testing.assert_allclose(b * [-1, 1], a, atol=1e-9)  # turned, scaled and moved drop out; mirrored flips x
    assert np.abs(a[12] - a[0]).max() > 1.5  # the open hand's middle fingertip: more than 1.5 palm lengths out


@pytest.mark.parametrize("group, label", [(OPEN, "open"), (GRIP, "grip")])
def test_held_out_real_hands_get_the_taught_label(hands, classifier, group, label):
    for which in group["held_out"]:
        assert label_of(classifier, hand(hands, which)) == (label, 1.0), which


@pytest.mark.parametrize("turn, scale, mirror", [(0.0, 1.0, True), (1.6, 0.4, False), (-2.5, 3.0, True), (3.1, 1.0, False)])
@pytest.mark.parametrize("group, label", [(OPEN, "open"), (GRIP, "grip")])
def test_held_out_hands_turned_scaled_and_mirrored_keep_their_label(hands, classifier, group, label, turn, scale, mirror):
    copy = moved(hand(hands, group["held_out"][0]), turn, scale, (-120, 60), mirror)
    assert label_of(classifier, copy) == (label, 1.0)


def test_the_model_on_the_photo_turned_a_quarter_turn_still_sees_an_open_hand(hands, classifier):
    """Not a transformed copy: the hand model's own landmarks on the held-out photo rotated by 90 degrees."""
    photo = cv2.imread(str(DATA / OPEN["held_out"][0][0]))
    found = Hands("hands-full", running_mode="image", num_hands=4).estimate(cv2.rotate(photo, cv2.ROTATE_90_CLOCKWISE))
    wrist = hand(hands, OPEN["held_out"][0])["wrist"]
    where = (photo.shape[0] - 1 - wrist.y, wrist.x)  # where a quarter turn clockwise puts that wrist
    open_hand = min(found, key=lambda h: np.hypot(h["wrist"].x - where[0], h["wrist"].y - where[1]))
    assert np.hypot(open_hand["wrist"].x - where[0], open_hand["wrist"].y - where[1]) < 5
    assert label_of(classifier, open_hand) == ("open", 1.0)


def test_a_hand_unlike_every_taught_shape_gets_no_label(hands, classifier):
    assert label_of(classifier, hand(hands, CLOTH)) == (None, 0.0)


def test_body_poses_and_hand_shapes_do_not_mix(hands, classifier):
    """Body examples never vote on hands: a classifier of body examples has no hand labels."""
    assert PoseClassifier(examples(hands, OPEN, "open"), kind=HAND).labels == ("open",)
    body = PoseClassifier(examples(hands, OPEN, "open"))
    assert body.labels == () and body.scores(np.full((1, 13, 2), np.nan)).shape == (1, 0)


def test_the_stage_labels_tracked_hands_and_emits_their_side(tmp_path, hands):
    path = tmp_path / "poses.json"
    library = PoseLibrary(path)
    library.add(examples(hands, OPEN, "open") + examples(hands, GRIP, "grip"))
    library.save()
    events = []
    stage = PoseStage(PoseSettings(file=str(path)), emit=lambda kind, **f: events.append(f))
    held = copy.deepcopy(hand(hands, GRIP["held_out"][0]))
    held.track_id = 7
    for i in range(20):
        stage.update([held], now=i / 10)
    assert held.label == "grip" and held.label_confidence >= 0.99  # smoothed: 1 - 0.72 ** 20
    assert events == [{"person": 7, "label": "grip", "previous": None, "confidence": pytest.approx(0.63, abs=0.05),
                       "hand": held.handedness}]
    data = json.loads(path.read_text())
    assert data["version"] == 2 and data["keypoints"]["hand"] == list(HAND21.keypoints)
    assert {ex["kind"] for ex in data["examples"]} == {"hand"}
    assert PoseLibrary.load(path).kinds() == {"open": "hand", "grip": "hand"}


def test_a_label_taught_as_a_body_pose_cannot_become_a_hand_shape(tmp_path, hands):
    library = PoseLibrary(tmp_path / "poses.json")
    body = Example("open", [(float(i), float(i)) for i in range(17)])
    library.add([body])
    with pytest.raises(ConfigError, match="'open' is taught as a body pose"):
        library.add(examples(hands, OPEN, "open"))


def test_version_1_files_are_still_read(tmp_path):
    path = tmp_path / "poses.json"
    names = ["nose", "left_shoulder"]
    path.write_text(json.dumps({"format": "piposer-poses", "version": 1, "keypoints": names,
                                "examples": [{"label": "up", "points": [[1, 2], None]}]}))
    (example,) = PoseLibrary.load(path).examples
    assert example.kind == "body" and example.points[0] == (1.0, 2.0) and example.points[5] is None


def test_piposer_teach_with_a_hands_model_records_the_largest_hand(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = cv2.imread(str(DATA / OPEN["held_out"][0][0]))
    cv2.imwrite(str(folder / "a.png"), photo)
    path = tmp_path / "poses.json"
    result = piposer("teach", "open", "--model", "hands-full", "--source", folder, "--seconds", 10,
                     "--interval", 0, "--poses", path)
    assert result.returncode == 0, result.stderr
    (example,) = PoseLibrary.load(path).examples
    assert example.kind == "hand"
    largest = max(Hands("hands-full", running_mode="image").estimate(photo), key=lambda h: h.box.area)
    assert example.points[0] == pytest.approx((largest["wrist"].x, largest["wrist"].y), abs=0.1)
    listed = piposer("poses", "list", "--poses", path)
    assert "hand shape" in listed.stdout.splitlines()[1]
    wall = tmp_path / "wall"
    wall.mkdir()
    cv2.imwrite(str(wall / "wall.png"), np.full((240, 320, 3), 90, np.uint8))
    assert_one_line_error(piposer("teach", "open", "--model", "hands-full", "--source", wall, "--seconds", 1,
                                  "--poses", tmp_path / "other.json"), "no hand visible")
