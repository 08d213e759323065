"""Hands attached to bodies: each hand gets the person whose wrist it sits on, and that wrist's side.

`attach` is the association on its own (one frame's body poses and hands in, one (body index, side) or None
per hand out); `BodyHands` is the estimator that runs a body model and the hand models on every frame,
follows the bodies with its own tracker, and returns the hands with their `person` (the body's track id)
and `side` set, so rules and MQTT can say "the left hand of person 3".
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ..types import Pose, keypoint_arrays
from . import BaseEstimator

# A hand belongs to a body wrist within this many body sizes (the larger of shoulder width and torso length)
# of the hand's own wrist landmark. Measured on the two photos of tests/test_body_hands.py (MoveNet MultiPose
# and PoseNet): a hand's wrist lies 0.01-0.08 body sizes from its own wrist keypoint; the next detected wrist
# is 0.85 or more away (a hand whose own wrist the body model missed stays unattached).
REACH = 0.5
SIDES = ("left", "right")


def attach(bodies: list[Pose], hands: list[Pose], reach: float = REACH) -> list[tuple[int, str] | None]:
    """For each hand, (body index, side) of the body wrist nearest its wrist landmark within `reach` body sizes,
    or None; nearest pairs first, and each wrist takes at most one hand."""
    from ..rules.engine import Scene, body_sizes

    if not bodies or not hands:
        return [None] * len(hands)
    layout = bodies[0].layout
    wrists = [layout.index(f"{side}_wrist") for side in SIDES]
    xy, seen = (a[:, wrists] for a in keypoint_arrays(bodies))  # (B, 2, 2), (B, 2)
    size = np.array(body_sizes(Scene(bodies, layout)))
    hand_xy = keypoint_arrays(hands)[0][:, hands[0].layout.index("wrist")]
    d = np.linalg.norm(hand_xy[:, None, None] - xy[None], axis=-1) / size[None, :, None]  # (H, B, 2)
    d = np.where(seen[None] & np.isfinite(d), d, np.inf)
    out: list[tuple[int, str] | None] = [None] * len(hands)
    for flat in np.argsort(d, axis=None).tolist():
        h, b, s = np.unravel_index(flat, d.shape)
        if d[h, b, s] > reach:
            break
        if out[h] is None and np.isfinite(d[:, b, s]).any():
            out[h] = (int(b), SIDES[s])
            d[:, b, s] = np.inf  # this wrist is taken
    return out


def attached(hands: list[Pose], bodies: list[Pose], reach: float = REACH) -> list[Pose]:
    """The hands, each with `person` (its body's track id, else the body's index in `bodies`) and `side` set
    (both None when no body wrist is near enough)."""
    for hand, found in zip(hands, attach(bodies, hands, reach)):
        person, side = (None, None) if found is None else found
        if person is not None and bodies[person].track_id is not None:
            person = bodies[person].track_id
        hand.person, hand.side = person, side
    return hands


class BodyHands(BaseEstimator):
    """Hands that know their person: a body estimator and the hands estimator on the same frame, the bodies
    followed by a tracker of their own (ids stable across frames), the hands returned attached.

    Costs both models every frame (BENCHMARKS.md, *Hands, third part*). The hands stay the pipeline's poses
    (tracked, classified and published as hands); the bodies are only used to name the hands' person.
    """

    def __init__(self, hands, bodies, tracker=None, reach: float = REACH):
        self.hands, self.bodies, self.tracker, self.reach = hands, bodies, tracker, reach
        self.layout = hands.layout
        self.model_name = f"{hands.model_name}+{bodies.model_name}"
        self.model_settings = hands.model_settings
        self.last_bodies: list[Pose] = []
        self.timings: dict[str, float] = {}

    def _estimate(self, frame) -> list[Pose]:
        bodies = self.bodies.estimate(frame)
        if self.tracker is not None:
            bodies = self.tracker.update(bodies, frame.timestamp)
        self.last_bodies = bodies
        hands = attached(self.hands.estimate(frame), bodies, self.reach)
        self.timings = {f"body_{k}": v for k, v in self.bodies.timings.items()} | self.hands.timings
        return hands

    def close(self) -> None:
        for part in (self.hands, self.bodies):
            part.close()


def build(config, hands, store) -> BodyHands:
    """The combined estimator for `[hands] bodies` (a body model's name): the body estimator built by `create`
    from a copy of `config` with that model (its family's section applies), in video mode, with a tracker."""
    from ..tracking import Tracker
    from . import create

    body = copy.copy(config)
    body.model = dataclasses.replace(config.model, name=config.hands.bodies)
    return BodyHands(hands, create(body, running_mode="video", store=store), Tracker(config.tracking))
