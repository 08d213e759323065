"""The rules engine: conditions on keypoints, debounced into rising and falling edges.

Pure logic, no GPIO: `RulesEngine.update(poses)` evaluates every `[[rules]]` entry against one
frame's poses at the injected clock's time and reports each rule's edges, so the same sequence of
poses at the same times always gives the same edges. sinks/gpio.py turns the results into pin changes.
Distances are measured in body sizes (see `body_sizes`), so a rule works near the camera or far away.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from operator import attrgetter
from typing import Callable

from ..events import Edge
from ..tracking.counts import HeldCount
from ..types import Keypoint, Layout, Pose
from .settings import RELATIONS, Condition, FollowSettings, RuleSettings, Zone, check_unique_names, pose_match

log = logging.getLogger(__name__)

# --- one frame ----------------------------------------------------------------------------------


class Scene:
    """One frame's poses, with what every rule shares: person keys and (lazily) body sizes.

    Conditions read keypoints straight from the poses: with a handful of people, plain Python per
    person is several times faster than numpy, whose per-call overhead dominates arrays this small.
    """

    def __init__(self, poses: list[Pose], layout: Layout | None):
        self.poses = poses
        self.layout = layout
        self.keys = [p.track_id for p in poses]
        self.unique_keys = len(set(self.keys)) == len(self.keys)
        self._body: list[float] | None = None

    @property
    def body(self) -> list[float]:
        if self._body is None:
            self._body = body_sizes(self)
        return self._body


def body_sizes(scene: Scene) -> list[float]:
    """Each person's body size in pixels: the larger of shoulder width and torso length.

    Torso length runs from the middle of the detected shoulders to the middle of the detected hips,
    so it survives a side view (where shoulder width collapses) and shoulder width survives a
    close-up without hips. NaN when neither can be measured: distance rules are then false.
    A hand's size is its palm length (wrist to middle knuckle), which bending the fingers leaves alone.
    """
    index = scene.layout.index
    if scene.layout.handed:
        wrist, knuckle = index("wrist"), index("middle_finger_mcp")
        return [math.dist((p.keypoints[wrist].x, p.keypoints[wrist].y), (p.keypoints[knuckle].x, p.keypoints[knuckle].y))
                if p.keypoints[wrist].detected else math.nan for p in scene.poses]
    ls, rs, lh, rh = (index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    sizes = []
    for pose in scene.poses:
        k = pose.keypoints
        width = math.dist((k[ls].x, k[ls].y), (k[rs].x, k[rs].y)) if k[ls].detected and k[rs].detected else 0.0
        shoulders, hips = _middle(k[ls], k[rs]), _middle(k[lh], k[rh])
        torso = math.dist(shoulders, hips) if shoulders and hips else 0.0
        size = max(width, torso)
        sizes.append(size if size > 0 else math.nan)
    return sizes


def _middle(a: Keypoint, b: Keypoint) -> tuple[float, float] | None:
    """The middle of two keypoints, or the one detected, or None."""
    if a.detected and b.detected:
        return (a.x + b.x) / 2, (a.y + b.y) / 2
    if a.detected or b.detected:
        k = a if a.detected else b
        return k.x, k.y
    return None


# --- conditions compiled to functions --------------------------------------------------------------

Test = Callable[[Scene, float], list[bool]]  # (scene, now) -> one bool per pose


class MissingKeypoint(Exception):
    """A rule names a keypoint that the running model's layout does not have (BlazePose-only names
    with PoseNet): the rule cannot run and is disabled."""


def compile_condition(cond: Condition, layout: Layout, min_score: float, count_hold: float = 0.0) -> Test:
    """Turn a validated Condition into a function of (scene, now) giving one bool per pose.

    Raises MissingKeypoint for a keypoint the layout does not have.
    """
    def index(name: str) -> int:
        if name not in layout.keypoints:
            raise MissingKeypoint(f"keypoint {name!r} is not in the model's {layout.name} layout")
        return layout.index(name)

    def seen(k: Keypoint) -> bool:
        return k.detected and k.score >= min_score

    if cond.people is not None:
        need, count = cond.people, HeldCount(count_hold)

        def people(s: Scene, now: float) -> list[bool]:
            return [count.update(sum(p.score >= min_score for p in s.poses), now) >= need] * len(s.poses)
        return people
    if cond.zone is not None:
        return _zone_test(cond.zone, index(cond.zone.keypoint), seen)
    for relation in RELATIONS:
        r = getattr(cond, relation)
        if r is not None:
            return _relation_test(relation, index(r.a), index(r.b), r.margin, seen)
    if cond.near is not None:
        a, b, within = index(cond.near.a), index(cond.near.b), cond.near.within

        def near(s: Scene, now: float) -> list[bool]:
            out = []
            for p, body in zip(s.poses, s.body):
                ka, kb = p.keypoints[a], p.keypoints[b]
                out.append(seen(ka) and seen(kb) and math.hypot(ka.x - kb.x, ka.y - kb.y) < within * body)
            return out
        return near
    if cond.pose is not None:
        match = pose_match(cond.pose)
        label, least = match.label, match.min_confidence

        def taught(s: Scene, now: float) -> list[bool]:  # labels come from the classifier stage (rules/poses.py)
            return [p.label == label and p.label_confidence >= least for p in s.poses]
        return taught
    if cond.person is not None:
        person = cond.person

        def of_person(s: Scene, now: float) -> list[bool]:  # a hand is its body's ([hands] bodies)
            return [(p.person if p.handedness is not None else p.track_id) == person for p in s.poses]
        return of_person
    if cond.side is not None:
        side = cond.side

        def on_side(s: Scene, now: float) -> list[bool]:
            return [p.side == side for p in s.poses]
        return on_side
    if cond.held is not None:
        return HeldTest(compile_condition(cond.held.when, layout, min_score, count_hold), cond.held.seconds)
    parts = [compile_condition(c, layout, min_score, count_hold) for c in (cond.all or cond.any)]
    combine = all if cond.all is not None else any

    def combined(s: Scene, now: float) -> list[bool]:
        # Every part runs (no short-circuit), so `held` timers inside see every frame.
        return [combine(v) for v in zip(*[part(s, now) for part in parts])]
    return combined


def _zone_test(zone: Zone, k: int, seen: Callable[[Keypoint], bool]) -> Test:
    if zone.rect is not None:
        x0, y0, x1, y1 = zone.rect
        return lambda s, now: [
            seen(kp) and x0 <= kp.nx <= x1 and y0 <= kp.ny <= y1 for kp in (p.keypoints[k] for p in s.poses)
        ]
    # Even-odd ray casting; each edge as (x at its start, y at start, y at end, dx/dy).
    points = zone.polygon
    edges = [
        (ax, ay, by, (bx - ax) / (by - ay) if by != ay else 0.0)  # horizontal edges never cross
        for (ax, ay), (bx, by) in zip(points, points[1:] + points[:1])
    ]

    def inside(x: float, y: float) -> bool:
        odd = False
        for ax, ay, by, slope in edges:
            if (ay > y) != (by > y) and x < ax + (y - ay) * slope:
                odd = not odd
        return odd

    return lambda s, now: [seen(kp) and inside(kp.nx, kp.ny) for kp in (p.keypoints[k] for p in s.poses)]


def _relation_test(relation: str, a: int, b: int, margin: float, seen: Callable[[Keypoint], bool]) -> Test:
    # Image y grows downwards, so "a above b" is a.y < b.y.
    axis, sign = {"above": ("y", 1), "below": ("y", -1), "left_of": ("x", 1), "right_of": ("x", -1)}[relation]
    coordinate = attrgetter(axis)

    def test(s: Scene, now: float) -> list[bool]:
        limits = [margin * body for body in s.body] if margin else [0.0] * len(s.poses)
        out = []
        for p, limit in zip(s.poses, limits):
            ka, kb = p.keypoints[a], p.keypoints[b]
            out.append(seen(ka) and seen(kb) and (coordinate(kb) - coordinate(ka)) * sign > limit)
        return out
    return test


class HeldTest:
    """True for a person once the inner test has been true for them for `seconds` without a break.

    People are told apart by track id; untracked poses share one state (any of them counts).
    """

    def __init__(self, inner: Test, seconds: float):
        self.inner = inner
        self.seconds = seconds
        self.since: dict[int | None, float] = {}

    def __call__(self, s: Scene, now: float) -> list[bool]:
        values = per_key(s, self.inner(s, now))
        self.since = {k: self.since.get(k, now) for k, v in values.items() if v}
        return [k in self.since and now - self.since[k] >= self.seconds for k in s.keys]


def per_key(scene: Scene, values: list[bool]) -> dict[int | None, bool]:
    """One value per person key: poses sharing a key (untracked ones) count if any of them is true."""
    if scene.unique_keys:
        return dict(zip(scene.keys, values))
    out: dict[int | None, bool] = {}
    for k, v in zip(scene.keys, values):
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

    def update(self, value: bool, now: float) -> Edge | None:
        """Feed the condition's value at time `now`; returns the edge it made, if any."""
        if value:
            self.false_since = None
            if self.true_since is None:
                self.true_since = now
            if not self.active and now - self.true_since >= self.activate_after and (
                self.last_rise is None or now - self.last_rise >= self.cooldown
            ):
                self.active, self.last_rise = True, now
                return Edge.RISING
            return None
        self.true_since = None
        if self.active:
            if self.false_since is None:
                self.false_since = now
            if now - self.false_since >= self.release_after:
                self.active, self.false_since = False, None
                return Edge.FALLING
        return None

    @property
    def idle(self) -> bool:
        """Nothing pending: inactive and not counting towards an activation."""
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
    """What one rule did this frame: its edges as (edge, person) pairs, whether it is active, and,
    for rules with a follow action, the best-scoring pose currently satisfying it."""

    rule: RuleSettings
    edges: list[tuple[str, int | None]]
    active: bool
    subject: Pose | None = None


class Rule:
    """One rule's compiled condition (per layout) and its per-person timing state."""

    def __init__(self, settings: RuleSettings, count_hold: float = 0.0):
        self.settings = settings
        self.count_hold = count_hold
        self.tests: dict[str, Test] = {}
        self.triggers: dict[int | None, Trigger] = {}
        self.follows = any(a.mode == "follow" for a in settings.actions)

    def test(self, layout: Layout) -> Test:
        test = self.tests.get(layout.name)
        if test is None:
            test = self.tests[layout.name] = compile_condition(self.settings.when, layout, self.settings.min_score,
                                                               self.count_hold)
        return test

    def update(self, scene: Scene, now: float) -> Outcome:
        """Evaluate on one frame. An empty frame is evaluated too, so `held` timers see the break."""
        s = self.settings
        values = self.test(scene.layout)(scene, now) if scene.layout is not None else []
        current = per_key(scene, values) if s.per_person else {None: any(values)}
        triggers = self.triggers
        edges = []
        for key, value in current.items():
            trigger = triggers.get(key)
            if trigger is None:
                if not value:
                    continue
                trigger = triggers[key] = Trigger(s.activate_after, s.release_after, s.cooldown)
            edge = trigger.update(value, now)
            if edge:
                edges.append((edge, key))
        for key in [k for k in triggers if k not in current]:  # people who left the picture
            trigger = triggers[key]
            edge = trigger.update(False, now)
            if edge:
                edges.append((edge, key))
            if trigger.idle and (trigger.last_rise is None or now - trigger.last_rise >= s.cooldown):
                del triggers[key]
        if len(edges) > 1:
            edges.sort(key=lambda e: (e[0] != Edge.FALLING, -1 if e[1] is None else e[1]))
        active = any(t.active for t in triggers.values())
        subject = self.subject(scene, values) if active and self.follows else None
        return Outcome(s, edges, active, subject)

    def subject(self, scene: Scene, values: list[bool]) -> Pose | None:
        """The best-scoring pose satisfying the condition whose person is active."""
        chosen = [
            pose for pose, key, v in zip(scene.poses, scene.keys, values)
            if v and (not self.settings.per_person or getattr(self.triggers.get(key), "active", False))
        ]
        return max(chosen, key=lambda pose: pose.score) if chosen else None


class RulesEngine:
    """Evaluates all rules on each frame's poses at the clock's time; a rule that raises is disabled
    (its error kept in `errors`) and the others keep running. `people` conditions count people with
    `count_hold` debouncing ([tracking] count_hold), as the published count does."""

    def __init__(self, rules: list[RuleSettings], clock: Callable[[], float] = time.monotonic, count_hold: float = 0.0):
        check_unique_names(rules)
        self.rules = [Rule(r, count_hold) for r in rules]
        self.clock = clock
        self.errors: dict[str, str] = {}
        self.layout: Layout | None = None  # the last one seen, for frames without anyone

    def active(self) -> list[tuple[str, int | None]]:
        """(rule name, person) for every rule and person active now."""
        return [
            (rule.settings.name, key)
            for rule in self.rules if rule.settings.name not in self.errors
            for key, trigger in rule.triggers.items() if trigger.active
        ]

    def update(self, poses: list[Pose], now: float | None = None) -> tuple[list[Outcome], list[tuple[RuleSettings, str]]]:
        """Evaluate every enabled rule at `now` (default: the clock's time); returns the outcomes and
        the rules that failed this frame."""
        if now is None:
            now = self.clock()
        if poses:
            self.layout = poses[0].layout
        scene = Scene(poses, self.layout)
        outcomes, failed = [], []
        for rule in self.rules:
            name = rule.settings.name
            if name in self.errors:
                continue
            try:
                outcomes.append(rule.update(scene, now))
            except Exception as exc:  # one broken rule must not stop the others
                message = str(exc) if isinstance(exc, MissingKeypoint) else f"{type(exc).__name__}: {exc}"
                self.disable(name, message)
                failed.append((rule.settings, message))
        return outcomes, failed

    def carry_over(self, previous: RulesEngine) -> set[str]:
        """Adopt the state (triggers, timers, disabled status) of every rule whose settings are identical in
        `previous`, so a reload does not restart them; returns the names carried over."""
        old = {rule.settings.name: rule for rule in previous.rules}
        kept = set()
        for i, rule in enumerate(self.rules):
            before = old.get(rule.settings.name)
            if before is not None and before.settings == rule.settings and before.count_hold == rule.count_hold:
                self.rules[i] = before
                kept.add(rule.settings.name)
                if rule.settings.name in previous.errors:
                    self.errors[rule.settings.name] = previous.errors[rule.settings.name]
        self.layout = previous.layout
        return kept

    def reset(self) -> None:
        """Forget every rule's timing state (edges start afresh), keeping disabled rules disabled."""
        for rule in self.rules:
            rule.triggers.clear()
            rule.tests.clear()  # `held` timers live in the compiled tests

    def disable(self, name: str, message: str) -> None:
        """Stop evaluating rule `name` (it failed with `message`); its persons no longer count as active."""
        self.errors[name] = message
        log.error("rule %r disabled: %s", name, message)
