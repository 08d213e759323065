"""Named zones: the zone conditions of the rules, each counted on its own (how many people are in it).

piposer has no separate list of zones: a zone is drawn where a rule needs it. So the zone of rule
`door` is called `door`; a rule with several zones has `door_1`, `door_2`, ... (in the order written).
A person is in a zone when the zone's keypoint, detected and scoring at least the rule's `min_score`,
lies inside it, exactly as the rule tests it, but without the rule's timing or other conditions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..tracking.counts import HeldCount
from ..types import Pose
from .engine import MissingKeypoint, Scene, compile_condition
from .settings import Condition, RuleSettings, Zone


@dataclass(frozen=True)
class NamedZone:
    name: str
    condition: Condition  # the zone as a one-key condition, so the rules' own test counts it
    min_score: float


def named_zones(rules: list[RuleSettings]) -> list[NamedZone]:
    """Every zone condition in `rules`, named after its rule (`<rule>_<n>` when a rule has several)."""
    out = []
    for rule in rules:
        found = [zone for _, zone in zone_paths(rule.when)]
        for i, zone in enumerate(found, 1):
            name = rule.name if len(found) == 1 else f"{rule.name}_{i}"
            out.append(NamedZone(name, Condition(zone=zone), rule.min_score))
    return out


def zone_paths(cond: Condition | None, path: str = "when") -> Iterator[tuple[str, Zone]]:
    """(path, zone) for every zone in a condition, however deeply nested, in the order written; the
    path (`when.zone`, `when.all[1].zone`, `when.held.when.zone`) is where the zone sits in the rule."""
    if cond is None:
        return
    if cond.zone is not None:
        yield f"{path}.zone", cond.zone
    if cond.held is not None:
        yield from zone_paths(cond.held.when, f"{path}.held.when")
    for key in ("all", "any"):
        for i, sub in enumerate(getattr(cond, key) or []):
            yield from zone_paths(sub, f"{path}.{key}[{i}]")


class ZoneCounts:
    """People per zone, each count debounced over `hold` seconds like the `state` count."""

    def __init__(self, zones: list[NamedZone], hold: float = 0.0):
        self.zones = zones
        self.hold = hold
        self._held = {z.name: HeldCount(hold) for z in zones}
        self._tests: dict = {}  # layout name -> [test or None (keypoint missing from that layout)]

    def update(self, poses: list[Pose], now: float) -> dict[str, int]:
        """The debounced number of people in each zone, by zone name."""
        if not poses:
            raw = [0] * len(self.zones)
        else:
            scene = Scene(poses, poses[0].layout)
            raw = [sum(test(scene, now)) if test is not None else 0 for test in self._compiled(scene.layout)]
        return {z.name: self._held[z.name].update(n, now) for z, n in zip(self.zones, raw)}

    def reset(self) -> None:
        for held in self._held.values():
            held.reset()

    def _compiled(self, layout) -> list:
        tests = self._tests.get(layout.name)
        if tests is None:
            tests = self._tests[layout.name] = [_compile(z, layout) for z in self.zones]
        return tests


def _compile(zone: NamedZone, layout):
    try:
        return compile_condition(zone.condition, layout, zone.min_score)
    except MissingKeypoint:  # the rule itself is disabled for this model; its zone stays empty
        return None
