"""Properties of the rule timing and zones that must hold for any input, checked with hypothesis."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from piposer.rules import Condition, RuleSettings, RulesEngine, Trigger, Zone

from rules_poses import Clock, pose

DT = 0.125  # a power of two: times add up exactly

timings = st.tuples(*[st.integers(0, 6).map(lambda n: n * DT)] * 3)


def replay(values: list[bool], activate_after: float, release_after: float, cooldown: float) -> list[tuple[int, str]]:
    trigger = Trigger(activate_after, release_after, cooldown)
    return [(i, e) for i, v in enumerate(values) if (e := trigger.update(v, i * DT))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=80), timings)
def test_trigger_edges(values, timing):
    activate_after, release_after, cooldown = timing
    edges = replay(values, activate_after, release_after, cooldown)
    kinds = [e for _, e in edges]
    # Edges alternate, starting with a rising one.
    assert kinds == ["rising", "falling"] * (len(kinds) // 2) + ["rising"] * (len(kinds) % 2)
    rises = [i for i, e in edges if e == "rising"]
    falls = [i for i, e in edges if e == "falling"]
    for i in rises:
        # The condition held, unbroken, for activate_after up to the rising edge.
        start = i - round(activate_after / DT)
        assert start >= 0 and all(values[start:i + 1])
    for i in falls:
        # ... and was false, unbroken, for release_after up to the falling edge.
        start = i - round(release_after / DT)
        assert start >= 0 and not any(values[start:i + 1])
    # Rising edges are at least the cooldown apart.
    assert all((b - a) * DT >= cooldown for a, b in zip(rises, rises[1:]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=80), timings)
def test_no_edge_is_missed(values, timing):
    """Whenever the condition stays true (false) long enough, the rule ends up active (inactive)."""
    activate_after, release_after, cooldown = timing
    trigger = Trigger(activate_after, release_after, cooldown)
    for i, v in enumerate(values):
        trigger.update(v, i * DT)
    settle = round(max(activate_after, cooldown) / DT) + 1
    end = len(values)
    for i in range(settle):
        trigger.update(True, (end + i) * DT)
    assert trigger.active
    for i in range(round(release_after / DT) + 1):
        trigger.update(False, (end + settle + i) * DT)
    assert not trigger.active


points = st.tuples(st.floats(0.01, 0.99), st.floats(0.01, 0.99))


@settings(max_examples=200, deadline=None)
@given(st.lists(points, min_size=1, max_size=6), points, points)
def test_a_rectangle_polygon_agrees_with_the_rectangle(noses, corner_a, corner_b):
    x0, x1 = sorted((corner_a[0], corner_b[0]))
    y0, y1 = sorted((corner_a[1], corner_b[1]))
    if x0 == x1 or y0 == y1:
        return
    rect = RuleSettings(name="rect", when=Condition(zone=Zone(rect=[x0, y0, x1, y1])))
    poly = RuleSettings(name="poly", when=Condition(zone=Zone(polygon=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]])))
    for nose in noses:
        # Points exactly on an edge may go either way; keep clear of them.
        if min(abs(nose[0] - x0), abs(nose[0] - x1), abs(nose[1] - y0), abs(nose[1] - y1)) < 1e-6:
            continue
        engine = RulesEngine([rect, poly], Clock())
        outcomes, _ = engine.update([pose({"nose": nose})])
        inside = x0 < nose[0] < x1 and y0 < nose[1] < y1
        assert [o.active for o in outcomes] == [inside, inside], (nose, (x0, y0, x1, y1))
