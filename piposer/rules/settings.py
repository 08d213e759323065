"""Rule settings: `[[rules]]` entries (conditions, zones, actions), checked when the config is read.

Positions in zones are normalized (0..1 of the image), so a zone survives a resolution change;
"above", "left of" and distances compare pixel positions, and distances are measured in body sizes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Literal

from ..errors import PiposerError
from ..types import LAYOUTS


KEYPOINT_NAMES = frozenset(name for layout in LAYOUTS.values() for name in layout.keypoints)
RELATIONS = ("above", "below", "left_of", "right_of")
NAME = re.compile(r"[A-Za-z0-9_-]+")  # rule and output names: safe in topics, logs and TOML


@dataclass
class Zone:
    """A keypoint inside a normalized rectangle `[x0, y0, x1, y1]` or polygon `[[x, y], ...]`."""

    keypoint: str = "nose"
    rect: list[float] | None = None
    polygon: list[list[float]] | None = None


@dataclass
class Relation:
    """Keypoint `a` above/below/left of/right of keypoint `b` (image directions), by more than
    `margin` body sizes."""

    a: str = ""
    b: str = ""
    margin: float = 0.0


@dataclass
class Near:
    """Keypoints `a` and `b` closer than `within` body sizes (e.g. hands together)."""

    a: str = ""
    b: str = ""
    within: float = 0.5


@dataclass
class PoseMatch:
    """The person's taught pose (see rules/poses.py) is `label`, with a smoothed confidence of at
    least `min_confidence` (0: whenever the classifier gives that label; its own hysteresis applies).
    `pose = "arms_up"` is short for `pose = { label = "arms_up" }`."""

    label: str = ""
    min_confidence: float = 0.0


@dataclass
class Held:
    """Condition `when` true for the same person for at least `seconds`."""

    seconds: float = 1.0
    when: Condition | None = None


@dataclass
class Condition:
    """One test on a pose; exactly one key is set. `all` / `any` combine several."""

    people: int | None = None
    zone: Zone | None = None
    above: Relation | None = None
    below: Relation | None = None
    left_of: Relation | None = None
    right_of: Relation | None = None
    near: Near | None = None
    pose: str | PoseMatch | None = None
    person: int | None = None
    side: Literal["left", "right"] | None = None
    held: Held | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None


@dataclass
class FollowSettings:
    """A pose quantity mapped to 0..1: the keypoint's normalized `axis` coordinate, `low` -> 0 and
    `high` -> 1 (clamped), smoothed with a time constant of `smooth` seconds."""

    keypoint: str = "right_wrist"
    axis: Literal["x", "y"] = "y"
    low: float = 1.0
    high: float = 0.0
    smooth: float = 0.2


@dataclass
class ActionSettings:
    """What a rule does to an output: `hold` it on while active, `pulse` it for `seconds` (default
    0.5) at each rising edge, or `follow` a pose quantity (PWM outputs only) while active."""

    output: str = ""
    mode: Literal["hold", "pulse", "follow"] = "hold"
    seconds: float | None = None
    follow: FollowSettings | None = None

    @property
    def pulse_seconds(self) -> float:
        return 0.5 if self.seconds is None else self.seconds


@dataclass
class RuleSettings:
    """One `[[rules]]` entry: a condition with its timing, scope and actions.

    The rule becomes active once `when` has held for `activate_after` seconds (and `cooldown`
    seconds have passed since its previous activation), and inactive once `when` has been false
    for `release_after` seconds. With `per_person`, each tracked person (track id) has their own
    state and edges; otherwise the rule is about "anyone". Keypoints scoring below `min_score`, or
    not detected by the model, never satisfy a condition.
    """

    name: str = ""
    when: Condition = field(default_factory=Condition)
    per_person: bool = False
    min_score: float = 0.0
    activate_after: float = 0.0
    release_after: float = 0.0
    cooldown: float = 0.0
    actions: list[ActionSettings] = field(default_factory=list)

    def __post_init__(self):
        if not NAME.fullmatch(self.name):
            raise ValueError(f"rules: every rule needs a name of letters, digits, _ or - (got {self.name!r})")
        where = f"rule '{self.name}'"
        _check_range(f"{where}: min_score", self.min_score, 0.0, 1.0)
        for key in ("activate_after", "release_after", "cooldown"):
            _check_range(f"{where}: {key}", getattr(self, key), 0.0, math.inf)
        _check_condition(self.when, f"{where}: when")
        for i, action in enumerate(self.actions):
            _check_action(action, f"{where}: actions[{i}]")


def _check_range(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{key} must be within {low:g}..{high:g}, not {value!r}")


def _check_keypoint(key: str, name: str) -> None:
    if name not in KEYPOINT_NAMES:
        raise ValueError(f"{key} = {name!r} is not a keypoint name (e.g. nose, left_wrist, right_hip)")


def _check_point(key: str, point: list[float]) -> None:
    if len(point) != 2 or not all(0.0 <= v <= 1.0 for v in point):
        raise ValueError(f"{key} must be [x, y] within 0..1 (normalized image coordinates), not {point!r}")


def _check_condition(cond: Condition, where: str) -> None:
    set_keys = [f.name for f in fields(cond) if getattr(cond, f.name) is not None]
    if len(set_keys) != 1:
        names = ", ".join(f.name for f in fields(Condition))
        found = f"got {', '.join(set_keys)}" if set_keys else "got none"
        raise ValueError(f"{where} needs exactly one of {names} ({found})")
    key = set_keys[0]
    value = getattr(cond, key)
    here = f"{where}.{key}"
    if key == "person" and value < 1:
        raise ValueError(f"{here} must be a track id (>= 1), not {value}")
    if key == "people" and value < 1:
        raise ValueError(f"{here} must be >= 1 (the rule is active with at least that many people), not {value}")
    if key == "zone":
        _check_keypoint(f"{here}.keypoint", value.keypoint)
        if (value.rect is None) == (value.polygon is None):
            raise ValueError(f"{here} needs exactly one of rect = [x0, y0, x1, y1] or polygon = [[x, y], ...]")
        if value.rect is not None:
            r = value.rect
            if len(r) != 4 or not all(0.0 <= v <= 1.0 for v in r) or not (r[0] < r[2] and r[1] < r[3]):
                raise ValueError(f"{here}.rect must be [x0, y0, x1, y1] within 0..1 with x0 < x1 and y0 < y1, not {r!r}")
        else:
            if len(value.polygon) < 3:
                raise ValueError(f"{here}.polygon needs at least 3 points, not {len(value.polygon)}")
            for i, point in enumerate(value.polygon):
                _check_point(f"{here}.polygon[{i}]", point)
    if key in RELATIONS or key == "near":
        _check_keypoint(f"{here}.a", value.a)
        _check_keypoint(f"{here}.b", value.b)
        if value.a == value.b:
            raise ValueError(f"{here}: a and b are both {value.a!r}")
    if key == "near" and value.within <= 0:
        raise ValueError(f"{here}.within must be > 0 (body sizes), not {value.within}")
    if key == "pose":
        match = pose_match(value)
        if not NAME.fullmatch(match.label):
            raise ValueError(f"{here} must name a taught pose (letters, digits, _ or -), not {match.label!r}")
        _check_range(f"{here}.min_confidence", match.min_confidence, 0.0, 1.0)
    if key == "held":
        _check_range(f"{here}.seconds", value.seconds, 0.0, math.inf)
        if value.when is None:
            raise ValueError(f"{here}.when is missing (the condition that must hold)")
        _check_condition(value.when, f"{here}.when")
    if key in ("all", "any"):
        if not value:
            raise ValueError(f"{here} must list at least one condition")
        for i, sub in enumerate(value):
            _check_condition(sub, f"{here}[{i}]")


def pose_match(value: str | PoseMatch) -> PoseMatch:
    """A `pose` condition in its long form."""
    return PoseMatch(value) if isinstance(value, str) else value


def pose_labels(cond: Condition) -> set[str]:
    """Every taught-pose label a condition uses, however deeply nested."""
    if cond.pose is not None:
        return {pose_match(cond.pose).label}
    inner = [cond.held.when] if cond.held is not None and cond.held.when is not None else (cond.all or cond.any or [])
    return set().union(*(pose_labels(c) for c in inner))


def _check_action(action: ActionSettings, where: str) -> None:
    if not action.output:
        raise ValueError(f"{where}.output is missing (the name of an [[outputs]] entry)")
    if action.seconds is not None:
        if action.mode != "pulse":
            raise ValueError(f"{where}.seconds is only for mode = 'pulse' (this action is mode = '{action.mode}')")
        if action.seconds <= 0:
            raise ValueError(f"{where}.seconds must be > 0, not {action.seconds}")
    if (action.mode == "follow") != (action.follow is not None):
        raise ValueError(f"{where}: mode = 'follow' and a follow = {{...}} table go together")
    if action.follow is not None:
        f = action.follow
        _check_keypoint(f"{where}.follow.keypoint", f.keypoint)
        if f.low == f.high:
            raise ValueError(f"{where}.follow: low and high must differ (both {f.low})")
        _check_range(f"{where}.follow.smooth", f.smooth, 0.0, math.inf)


def check_unique_names(rules: list[RuleSettings]) -> None:
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise PiposerError(f"config: two rules are named {name!r}; rule names must be unique")
