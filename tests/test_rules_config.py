"""The example configs in config/ load, validate, build their devices and behave as their comments say."""

from __future__ import annotations

import math
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from piposer.config import load
from piposer.sinks.gpio import RulesSink
from piposer.types import Frame

from conftest import ROOT
from rules_poses import Clock, pose

ART = ROOT / "config" / "art-installation.toml"
HOME = ROOT / "config" / "home-automation.toml"
FRAME = Frame(None, 0, 0.0)


def load_sections(path):
    """The whole file through the real config loader; its rules, outputs and button."""
    cfg = load(path, check_files=False)  # the examples name /etc/piposer/mqtt-password, made by the installer
    return cfg.rules, cfg.outputs, cfg.button


@pytest.fixture
def factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def make_sink(path, factory, clock, events):
    rules, outputs, button = load_sections(path)
    return RulesSink(rules, outputs, button=button, pin_factory=factory, clock=clock,
                     emit=lambda kind, **f: events.append((f["rule"], f["edge"])))


def states(factory, pin):
    return [s.state for s in factory.pin(pin).states]


def test_art_installation_example(factory):
    clock, events = Clock(), []
    sink = make_sink(ART, factory, clock, events)
    assert [r.settings.name for r in sink.engine.rules[:3]] == ["zone_left", "zone_centre", "zone_right"]
    # A visitor walks in on the left, raises the right hand, lowers it a little, leaves.
    in_left = dict(left_ankle=(0.15, 0.9), right_ankle=(0.2, 0.9), track_id=1)
    frames = (
        [[pose(**in_left)]] * 4
        + [[pose(**in_left, right_wrist=(0.4, 0.1), right_elbow=(0.42, 0.2))]] * 2
        + [[pose(**in_left, right_wrist=(0.4, 0.3), right_elbow=(0.42, 0.2))]] * 2
        + [[]] * 12
    )
    for poses in frames:
        sink.publish(FRAME, poses)
        clock.advance(0.25)
    sink.close()
    # Active-low relays: high (1) is off. The last entry is the pin's release by close().
    assert states(factory, 17) == [False, 1.0, 0.0, 1.0, 0.0]  # lamp_left: off, on, off
    assert states(factory, 27) == [False, 1.0, 0.0]            # lamp_centre: never on
    # Spotlight: full at wrist height 0.1; at 0.3 the target is 0.6, approached with time constant
    # 0.3 s (frames 0.25 s apart); off 0.5 s after the hand is gone.
    alpha = 1 - math.exp(-0.25 / 0.3)
    first = 1 + alpha * (0.6 - 1)
    assert states(factory, 18) == pytest.approx([0, 1.0, first, first + alpha * (0.6 - first), 0.0], abs=1e-4)
    assert states(factory, 23) == [False]                      # no clap
    assert events == [
        ("zone_left", "rising"), ("right_hand_up", "rising"), ("right_hand_up", "falling"), ("zone_left", "falling"),
    ]


def test_home_automation_example(factory):
    clock, events = Clock(), []
    sink = make_sink(HOME, factory, clock, events)
    someone = [pose(track_id=1)]
    waving = [pose(track_id=1, right_wrist=(0.4, 0.1), right_elbow=(0.42, 0.2))]
    for poses, seconds in ((someone, 2.0), (waving, 2.5), (someone, 1.0), ([], 125.0)):
        for _ in range(int(seconds / 0.25)):
            sink.publish(FRAME, poses)
            clock.advance(0.25)
    time.sleep(0.4)  # the chime pulse runs in real time (0.3 s)
    sink.close()
    # Active-low relays: high (1) is off; the last entry is the pin's release by close().
    assert states(factory, 17) == [False, 1.0, 0.0, 1.0, 0.0]  # light: on after 1 s, off 120 s after
    assert states(factory, 27) == [False, 1.0, 0.0, 1.0, 0.0]  # chime: one 0.3 s pulse
    assert states(factory, 22) == [False, 1.0, 0.0]            # status LED (active high): on, off
    assert events == [
        ("presence", "rising"), ("wave_doorbell", "rising"), ("wave_doorbell", "falling"), ("presence", "falling"),
    ]


@pytest.mark.parametrize("path", [ART, HOME], ids=["art", "home"])
def test_examples_use_each_pin_once_and_name_real_outputs(path, factory):
    rules, outputs, button = load_sections(path)
    pins = [o.pin for o in outputs] + ([button.pin] if button else [])
    assert len(pins) == len(set(pins))
    RulesSink(rules, outputs, button=button, pin_factory=factory).close()
