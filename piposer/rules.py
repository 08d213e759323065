"""Declarative pose rules: conditions on keypoints, debounced into rising and falling edges.

Pure logic, no GPIO: `RulesEngine.update(poses)` evaluates every `[[rules]]` entry against one
frame's poses at the injected clock's time and reports each rule's edges, so the same sequence of
poses at the same times always gives the same edges. gpio.py turns the results into pin changes.

Positions in zones are normalized (0..1 of the image), so a zone survives a resolution change;
"above", "left of" and distances compare pixel positions, and distances are measured in body
sizes (see `body_sizes`), so a rule works whether the person stands near the camera or far away.
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Literal

import numpy as np

from .errors import PiposerError
from .types import LAYOUTS, Layout, Pose

log = logging.getLogger(__name__)

KEYPOINT_NAMES = frozenset(name for layout in LAYOUTS.values() for name in layout.keypoints)
RELATIONS = ("above", "below", "left_of", "right_of")


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
    """What a rule does to an output: `hold` it on while active, `pulse` it for `seconds` at each
    rising edge, or `follow` a pose quantity (PWM outputs only) while active."""

    output: str = ""
    mode: Literal["hold", "pulse", "follow"] = "hold"
    seconds: float = 0.5
    follow: FollowSettings | None = None


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
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
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


def _check_action(action: ActionSettings, where: str) -> None:
    if not action.output:
        raise ValueError(f"{where}.output is missing (the name of an [[outputs]] entry)")
    if action.mode == "pulse" and action.seconds <= 0:
        raise ValueError(f"{where}.seconds must be > 0, not {action.seconds}")
    if (action.mode == "follow") != (action.follow is not None):
        raise ValueError(f"{where}: mode = 'follow' and a follow = {{...}} table go together")
    if action.follow is not None:
        f = action.follow
        _check_keypoint(f"{where}.follow.keypoint", f.keypoint)
        if f.low == f.high:
            raise ValueError(f"{where}.follow: low and high must differ (both {f.low})")
        _check_range(f"{where}.follow.smooth", f.smooth, 0.0, math.inf)


# --- one frame, as arrays ------------------------------------------------------------------------


class Scene:
    """One frame's poses as (keypoint, person) arrays, built once and shared by every rule."""

    def __init__(self, poses: list[Pose], layout: Layout):
        self.poses = poses
        self.layout = layout
        self.count = len(poses)
        self.keys = [p.track_id for p in poses]
        rows = [
            (k.x, k.y, k.nx, k.ny, k.score if k.detected else -1.0)
            for p in poses for k in p.keypoints
        ]
        a = np.array(rows, dtype=np.float64).reshape(len(poses), len(layout.keypoints), 5).transpose(2, 1, 0)
        self.x, self.y, self.nx, self.ny, self.score = a
        self.pose_scores = np.array([p.score for p in poses], dtype=np.float64)
        self._ok: dict[float, np.ndarray] = {}
        self._body: np.ndarray | None = None

    def ok(self, min_score: float) -> np.ndarray:
        """(K, P) True where a keypoint is detected and scores at least `min_score`."""
        ok = self._ok.get(min_score)
        if ok is None:
            ok = self._ok[min_score] = self.score >= min_score
        return ok

    @property
    def body(self) -> np.ndarray:
        if self._body is None:
            self._body = body_sizes(self)
        return self._body


def body_sizes(scene: Scene) -> np.ndarray:
    """Each person's body size in pixels: the larger of shoulder width and torso length.

    Torso length runs from the middle of the detected shoulders to the middle of the detected hips,
    so it survives a side view (where shoulder width collapses) and shoulder width survives a
    close-up without hips. NaN when no shoulder is detected: distance rules are then false.
    """
    idx = scene.layout.index
    ls, rs, lh, rh = (idx(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    ok = scene.score >= 0
    width = np.where(ok[ls] & ok[rs], np.hypot(scene.x[ls] - scene.x[rs], scene.y[ls] - scene.y[rs]), 0.0)

    def middle(a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = ok[a].astype(np.float64) + ok[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = (scene.x[a] * ok[a] + scene.x[b] * ok[b]) / n
            my = (scene.y[a] * ok[a] + scene.y[b] * ok[b]) / n
        return mx, my, n > 0

    sx, sy, s_ok = middle(ls, rs)
    hx, hy, h_ok = middle(lh, rh)
    torso = np.where(s_ok & h_ok, np.hypot(sx - hx, sy - hy), 0.0)
    size = np.maximum(width, torso)
    return np.where(s_ok & (size > 0), size, np.nan)


# --- conditions compiled to array functions --------------------------------------------------------

Test = Callable[[Scene, float], np.ndarray]  # (scene, now) -> (P,) bool


def compile_condition(cond: Condition, layout: Layout, min_score: float) -> Test:
    """Turn a validated Condition into a function of (scene, now) giving one bool per pose.

    Raises KeyError naming a keypoint the layout does not have.
    """
    def index(name: str) -> int:
        if name not in layout.keypoints:
            raise KeyError(f"keypoint {name!r} is not in the model's {layout.name} layout")
        return layout.index(name)

    if cond.people is not None:
        need = cond.people
        return lambda s, now: np.full(s.count, int((s.pose_scores >= min_score).sum()) >= need)
    if cond.zone is not None:
        return _zone_test(cond.zone, index(cond.zone.keypoint), min_score)
    for relation in RELATIONS:
        r = getattr(cond, relation)
        if r is not None:
            return _relation_test(relation, index(r.a), index(r.b), r.margin, min_score)
    if cond.near is not None:
        a, b, within = index(cond.near.a), index(cond.near.b), cond.near.within

        def near(s: Scene, now: float) -> np.ndarray:
            ok = s.ok(min_score)
            distance = np.hypot(s.x[a] - s.x[b], s.y[a] - s.y[b])
            with np.errstate(invalid="ignore"):
                return ok[a] & ok[b] & (distance < within * s.body)
        return near
    if cond.held is not None:
        return HeldTest(compile_condition(cond.held.when, layout, min_score), cond.held.seconds)
    parts = [compile_condition(c, layout, min_score) for c in (cond.all or cond.any)]
    combine = np.logical_and.reduce if cond.all is not None else np.logical_or.reduce
    return lambda s, now: combine([p(s, now) for p in parts]) if s.count else np.zeros(0, bool)


def _zone_test(zone: Zone, k: int, min_score: float) -> Test:
    if zone.rect is not None:
        x0, y0, x1, y1 = zone.rect
        return lambda s, now: s.ok(min_score)[k] & (s.nx[k] >= x0) & (s.nx[k] <= x1) & (s.ny[k] >= y0) & (s.ny[k] <= y1)
    poly = np.asarray(zone.polygon, dtype=np.float64)
    ax, ay = poly[:, 0], poly[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)

    def inside(s: Scene, now: float) -> np.ndarray:
        # Even-odd ray casting, all people against all edges at once: (P, 1) points vs (E,) edges.
        px, py = s.nx[k][:, None], s.ny[k][:, None]
        crosses = (ay > py) != (by > py)
        with np.errstate(invalid="ignore", divide="ignore"):
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
        odd = np.count_nonzero(crosses & (px < x_cross), axis=1) % 2 == 1
        return s.ok(min_score)[k] & odd
    return inside


def _relation_test(relation: str, a: int, b: int, margin: float, min_score: float) -> Test:
    # Image y grows downwards, so "a above b" is a.y < b.y.
    axis, sign = {"above": ("y", 1), "below": ("y", -1), "left_of": ("x", 1), "right_of": ("x", -1)}[relation]

    def test(s: Scene, now: float) -> np.ndarray:
        ok = s.ok(min_score)
        v = getattr(s, axis)
        gap = (v[b] - v[a]) * sign
        if margin:
            with np.errstate(invalid="ignore"):
                return ok[a] & ok[b] & (gap > margin * s.body)
        return ok[a] & ok[b] & (gap > 0)
    return test


class HeldTest:
    """True for a person once the inner test has been true for them for `seconds` without a break.

    People are told apart by track id; untracked poses share one state (any of them counts).
    """

    def __init__(self, inner: Test, seconds: float):
        self.inner = inner
        self.seconds = seconds
        self.since: dict[int | None, float] = {}

    def __call__(self, s: Scene, now: float) -> np.ndarray:
        values = per_key(s.keys, self.inner(s, now))
        self.since = {k: self.since.get(k, now) for k, v in values.items() if v}
        return np.array([k in self.since and now - self.since[k] >= self.seconds for k in s.keys], bool)


def per_key(keys: list[int | None], values: np.ndarray) -> dict[int | None, bool]:
    """One value per person key: poses sharing a key (untracked ones) count if any of them is true."""
    out: dict[int | None, bool] = {}
    for k, v in zip(keys, values.tolist()):
        out[k] = out.get(k, False) or v
    return out


# --- timing -------------------------------------------------------------------------------------


@dataclass
class Trigger:
    """Hysteresis for one rule and person: delays on activation and release, a cooldown between
    activations (measured from one rising edge to the next)."""

    activate_after: float
    release_after: float
    cooldown: float
    active: bool = False
    true_since: float | None = None
    false_since: float | None = None
    last_rise: float | None = None

    def update(self, value: bool, now: float) -> str | None:
        """Feed the condition's value at time `now`; returns "rising", "falling" or None."""
        if value:
            self.false_since = None
            if self.true_since is None:
                self.true_since = now
            if not self.active and now - self.true_since >= self.activate_after and (
                self.last_rise is None or now - self.last_rise >= self.cooldown
            ):
                self.active, self.last_rise = True, now
                return "rising"
            return None
        self.true_since = None
        if self.active:
            if self.false_since is None:
                self.false_since = now
            if now - self.false_since >= self.release_after:
                self.active, self.false_since = False, None
                return "falling"
        return None

    @property
    def idle(self) -> bool:
        """Nothing pending: inactive, not counting towards activation, cooldown over (or none)."""
        return not self.active and self.true_since is None


class Follower:
    """A pose quantity mapped to 0..1 and smoothed exponentially over time."""

    def __init__(self, settings: FollowSettings, min_score: float):
        self.settings = settings
        self.min_score = min_score
        self.value: float | None = None
        self.at: float | None = None

    def update(self, pose: Pose | None, now: float) -> float | None:
        """The new smoothed value, or the last one when the keypoint is not seen this frame."""
        f = self.settings
        kp = pose[f.keypoint] if pose is not None else None
        if kp is None or not kp.detected or kp.score < self.min_score:
            return self.value
        raw = (getattr(kp, "n" + f.axis) - f.low) / (f.high - f.low)
        target = min(max(raw, 0.0), 1.0)
        if self.value is None or f.smooth == 0:
            self.value = target
        else:
            alpha = 1.0 - math.exp(-(now - self.at) / f.smooth)
            self.value += alpha * (target - self.value)
        self.at = now
        return self.value

    def reset(self) -> None:
        self.value = self.at = None


# --- rules --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one rule did this frame: its edges as (edge, person) pairs, whether it is active, and the
    best-scoring pose currently satisfying it (for actions that follow a pose)."""

    rule: RuleSettings
    edges: list[tuple[str, int | None]]
    active: bool
    subject: Pose | None = None


class Rule:
    """One rule's compiled condition (per layout) and its per-person timing state."""

    def __init__(self, settings: RuleSettings):
        self.settings = settings
        self.tests: dict[str, Test] = {}
        self.triggers: dict[int | None, Trigger] = {}

    def test(self, layout: Layout) -> Test:
        test = self.tests.get(layout.name)
        if test is None:
            test = self.tests[layout.name] = compile_condition(self.settings.when, layout, self.settings.min_score)
        return test

    def update(self, scene: Scene | None, now: float) -> Outcome:
        s = self.settings
        values = self.test(scene.layout)(scene, now) if scene is not None else np.zeros(0, bool)
        if s.per_person:
            current = per_key(scene.keys, values) if scene is not None else {}
        else:
            current = {None: bool(values.any())}
        edges = []
        for key in current.keys() | self.triggers.keys():
            trigger = self.triggers.get(key)
            if trigger is None:
                trigger = self.triggers[key] = Trigger(s.activate_after, s.release_after, s.cooldown)
            edge = trigger.update(current.get(key, False), now)
            if edge:
                edges.append((edge, key))
            if trigger.idle and key not in current and (trigger.last_rise is None or now - trigger.last_rise >= s.cooldown):
                del self.triggers[key]
        edges.sort(key=lambda e: (e[0] != "falling", -1 if e[1] is None else e[1]))
        active_keys = {k for k, t in self.triggers.items() if t.active}
        subject = None
        if active_keys and scene is not None:
            chosen = [i for i, v in enumerate(values.tolist()) if v and (not s.per_person or scene.keys[i] in active_keys)]
            if chosen:
                subject = scene.poses[max(chosen, key=lambda i: scene.pose_scores[i])]
        return Outcome(s, edges, bool(active_keys), subject)


class RulesEngine:
    """Evaluates all rules on each frame's poses at the clock's time; a rule that raises is disabled
    (its error kept in `errors`) and the others keep running."""

    def __init__(self, rules: list[RuleSettings], clock: Callable[[], float] = time.monotonic):
        names = [r.name for r in rules]
        for name in names:
            if names.count(name) > 1:
                raise PiposerError(f"config: two rules are named {name!r}; rule names must be unique")
        self.rules = [Rule(r) for r in rules]
        self.clock = clock
        self.errors: dict[str, str] = {}

    def update(self, poses: list[Pose]) -> tuple[list[Outcome], list[tuple[RuleSettings, str]]]:
        """Evaluate every enabled rule; returns the outcomes and the rules that failed this frame."""
        now = self.clock()
        scene = Scene(poses, poses[0].layout) if poses else None
        outcomes, failed = [], []
        for rule in self.rules:
            name = rule.settings.name
            if name in self.errors:
                continue
            try:
                outcomes.append(rule.update(scene, now))
            except Exception as exc:  # one broken rule must not stop the others
                message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyError) else str(exc.args[0])
                self.errors[name] = message
                log.error("rule %r disabled: %s", name, message)
                failed.append((rule.settings, message))
        return outcomes, failed
