"""RulesSink driving gpiozero mock pins: pin histories for pose sequences, safety, the button."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from piposer.errors import PiposerError
from piposer.sinks.gpio import RulesSink
from piposer.types import Frame

from rules_poses import Clock, hand_raised, pose, sections

FRAME = Frame(np.zeros((480, 640, 3), np.uint8), 0, 0.0)


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def pwm_factory():
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def sink(toml: str, factory, clock: Clock | None = None, **kwargs) -> RulesSink:
    rules, outputs, button = sections(tomllib.loads(toml))
    return RulesSink(rules, outputs, button=button, pin_factory=factory, clock=clock or Clock(), **kwargs)


def feed(s: RulesSink, frames: list[list], clock: Clock, dt: float = 0.25) -> None:
    for poses in frames:
        s.publish(FRAME, poses)
        clock.advance(dt)


def states(factory, pin: int) -> list:
    return [s.state for s in factory.pin(pin).states]


LAMP = """
[[outputs]]
name = "lamp"
kind = "relay"
pin = 17

[[rules]]
name = "raised"
when = { above = { a = "left_wrist", b = "nose" } }
activate_after = 0.5
release_after = 0.5
actions = [ { output = "lamp", mode = "hold" } ]
"""


def test_relay_holds_while_the_rule_is_active_without_chatter(factory):
    clock = Clock()
    events = []
    s = sink(LAMP, factory, clock, emit=lambda kind, **f: events.append((kind, f)))
    up, down = [hand_raised()], [pose()]
    feed(s, [down, up, down, up, up, up, down, up, down, down, down, down], clock)
    s.close()
    # Flicker at the start and the single dropout never reach the relay: one on, one off.
    assert states(factory, 17) == [False, True, False]
    factory.pin(17).assert_states([False, True, False])
    assert events == [
        ("rule", {"rule": "raised", "edge": "rising", "person": None}),
        ("rule", {"rule": "raised", "edge": "falling", "person": None}),
    ]


def test_active_low_relay_and_safe_on(factory):
    table = LAMP.replace("pin = 17", "pin = 17\nactive_high = false")
    clock = Clock()
    s = sink(table, factory, clock)
    assert factory.pin(17).state is True  # off = high for an active-low board
    feed(s, [[hand_raised()]] * 3, clock)
    assert factory.pin(17).state is False
    s.close()
    assert states(factory, 17) == [False, True, False, True]  # input(pull float) -> off -> on -> off


def test_two_rules_share_a_held_output(factory):
    table = LAMP.replace("activate_after = 0.5\nrelease_after = 0.5\n", "") + """
[[rules]]
name = "crowd"
when = { people = 2 }
actions = [ { output = "lamp", mode = "hold" } ]
"""
    clock = Clock()
    s = sink(table, factory, clock)
    feed(s, [[hand_raised()], [hand_raised(), pose()], [pose(), pose()], [pose()]], clock)
    s.close()
    assert states(factory, 17) == [False, True, False]


def test_pulse_on_each_rising_edge_with_real_duration(factory):
    table = """
[[outputs]]
name = "bell"
kind = "buzzer"
pin = 22

[[rules]]
name = "raised"
when = { above = { a = "left_wrist", b = "nose" } }
actions = [ { output = "bell", mode = "pulse", seconds = 0.2 } ]
"""
    clock = Clock()
    s = sink(table, factory, clock)
    factory.pin(22).clear_states()
    feed(s, [[hand_raised()], [hand_raised()]], clock)  # one rising edge, one pulse
    time.sleep(0.35)
    feed(s, [[pose()], [hand_raised()]], clock)         # a second rising edge, 0.35 s later
    time.sleep(0.35)
    s.close()
    factory.pin(22).assert_states_and_times([(0.0, False), (0.0, True), (0.2, False), (0.15, True), (0.2, False)])
    assert states(factory, 22) == [False, True, False, True, False]


PWM = """
[[outputs]]
name = "dimmer"
kind = "pwm"
pin = 18

[[rules]]
name = "hand_up"
when = { above = { a = "left_wrist", b = "left_shoulder" } }
release_after = 0.25
actions = [ { output = "dimmer", mode = "follow", follow = { keypoint = "left_wrist", axis = "y", low = 0.3, high = 0.1, smooth = 0 } } ]
"""


def test_pwm_follows_hand_height_clamped(pwm_factory):
    clock = Clock()
    s = sink(PWM, pwm_factory, clock)
    heights = [0.5, 0.25, 0.2, 0.15, 0.05, 0.05, 0.5, 0.5, 0.5]
    feed(s, [[pose(left_wrist=(0.6, y))] for y in heights], clock)
    s.close()
    # below the shoulder: off; 0.25 -> 0.25, 0.2 -> 0.5, 0.15 -> 0.75, 0.05 -> clamped 1; then
    # the hand drops: the value holds for the release delay, then goes to 0.
    assert states(pwm_factory, 18) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 0.0])


def test_pwm_smoothing_uses_the_rule_clock(pwm_factory):
    clock = Clock()
    s = sink(PWM.replace("smooth = 0", "smooth = 0.25"), pwm_factory, clock)
    feed(s, [[pose(left_wrist=(0.6, 0.3 - 1e-9))]] + [[pose(left_wrist=(0.6, 0.1))]] * 3, clock)
    s.close()
    steps = [1 - np.exp(-n) for n in (1, 2, 3)]  # dt = one time constant
    assert states(pwm_factory, 18) == pytest.approx([0.0] + [round(v, 4) for v in steps] + [0.0], abs=1e-4)


def test_pwm_safe_value_on_close(pwm_factory):
    table = PWM.replace('pin = 18', 'pin = 18\nsafe = 0.3')
    clock = Clock()
    s = sink(table, pwm_factory, clock)
    feed(s, [[pose(left_wrist=(0.6, 0.05))]], clock)
    s.close()
    assert states(pwm_factory, 18) == pytest.approx([0.0, 0.3, 1.0, 0.3, 0.0])  # ..., safe, released


def test_per_person_events_and_outputs(factory):
    table = LAMP.replace("activate_after = 0.5\nrelease_after = 0.5", "per_person = true")
    events = []
    clock = Clock()
    s = sink(table, factory, clock, emit=lambda kind, **f: events.append(f))
    feed(s, [[hand_raised(track_id=3)], [hand_raised(track_id=3), hand_raised(track_id=5)], [pose(track_id=3)], []], clock)
    s.close()
    assert [(e["edge"], e["person"]) for e in events] == [("rising", 3), ("rising", 5), ("falling", 3), ("falling", 5)]
    assert states(factory, 17) == [False, True, False]


def test_a_failing_rule_is_reported_and_the_others_keep_driving(factory):
    table = LAMP + """
[[outputs]]
name = "pointer"
kind = "led"
pin = 27

[[rules]]
name = "pointing"
when = { above = { a = "left_index", b = "nose" } }
actions = [ { output = "pointer", mode = "hold" } ]
"""
    events = []
    clock = Clock()
    s = sink(table, factory, clock, emit=lambda kind, **f: events.append((kind, f)))
    feed(s, [[hand_raised()]] * 3 + [[pose()]] * 3, clock)
    s.close()
    assert events[0] == ("rule_error", {"rule": "pointing", "error": "keypoint 'left_index' is not in the model's coco17 layout"})
    assert [e[1]["edge"] for e in events[1:]] == ["rising", "falling"]
    assert states(factory, 17) == [False, True, False]
    assert states(factory, 27) == [False]


def test_a_failing_event_callback_does_not_stop_the_outputs(factory):
    def broken(kind, **fields):
        raise ConnectionError("broker gone")

    clock = Clock()
    s = sink(LAMP, factory, clock, emit=broken)
    feed(s, [[hand_raised()]] * 3, clock)
    assert factory.pin(17).state is True
    s.close()


def test_close_is_idempotent_and_sets_every_output_safe(factory):
    table = LAMP.replace("activate_after = 0.5\n", "") + """
[[outputs]]
name = "standby"
kind = "led"
pin = 23
safe = 1
"""
    clock = Clock()
    s = sink(table, factory, clock)
    feed(s, [[hand_raised()]], clock)
    assert (factory.pin(17).state, factory.pin(23).state) == (True, True)
    s.close()
    s.close()
    s.publish(FRAME, [hand_raised()])  # after close: ignored, nothing moves
    assert states(factory, 17) == [False, True, False]
    assert states(factory, 23) == [False, True]


def test_close_reports_rules_still_active(factory):
    table = LAMP.replace("activate_after = 0.5\n", "").replace('name = "raised"', 'name = "raised"\nper_person = true')
    events = []
    clock = Clock()
    s = sink(table, factory, clock, emit=lambda kind, **f: events.append((kind, f)))
    feed(s, [[hand_raised(track_id=4), pose(track_id=6)]], clock)
    s.close()
    assert events == [
        ("rule", {"rule": "raised", "edge": "rising", "person": 4}),
        ("rule", {"rule": "raised", "edge": "falling", "person": 4, "reason": "stopped"}),
    ]


def test_no_gpio_library_is_a_clear_error(monkeypatch):
    import gpiozero

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-library")
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    with pytest.raises(PiposerError, match="output 'lamp': cannot use GPIO17 as a relay: no GPIO library found"):
        sink(LAMP, None)


def test_outputs_go_safe_when_the_loop_raises(factory):
    clock = Clock()
    with pytest.raises(RuntimeError):
        with sink(LAMP.replace("activate_after = 0.5\n", ""), factory, clock) as s:
            feed(s, [[hand_raised()]], clock)
            assert factory.pin(17).state is True
            raise RuntimeError("estimator crashed")
    assert states(factory, 17) == [False, True, False]


def test_a_failed_start_leaves_the_outputs_already_built_safe(factory):
    from gpiozero import LED

    blocker = LED(24, pin_factory=factory)  # GPIO24 is taken by something else
    table = """
[[outputs]]
name = "first"
kind = "led"
pin = 17
safe = 0

[[outputs]]
name = "second"
kind = "relay"
pin = 24
"""
    with pytest.raises(PiposerError, match="output 'second': cannot use GPIO24 as a relay"):
        sink(table, factory)
    blocker.close()
    assert states(factory, 17) == [False]
    assert factory.pin(17).function == "input"  # released


@pytest.mark.parametrize("table, message", [
    ('[[outputs]]\nname = "x"\npin = 28', r"output 'x'.pin must be a BCM GPIO number 0..27 \(GPIO17 is 17\), not 28"),
    ('[[outputs]]\nname = "x"', "output 'x'.pin must be a BCM GPIO number"),
    ('[[outputs]]\nname = "x"\npin = 5\nkind = "relay"\nsafe = 0.5', "output 'x'.safe must be 0 .off. or 1 .on. for a relay"),
    ('[[outputs]]\nname = "x"\npin = 5\nkind = "pwm"\nsafe = 1.5', r"output 'x'.safe must be within 0..1"),
    ('[[outputs]]\nname = "x"\npin = 5\nfrequency = 50', "output 'x'.frequency is only for kind = 'pwm'"),
    ('[[outputs]]\nname = "x"\npin = 5\nkind = "servo"', r"outputs\[0\].kind = 'servo' is not allowed"),
    ('[[outputs]]\npin = 5', "outputs: every output needs a name"),
    ('[button]\npin = 40', "button.pin must be a BCM GPIO number"),
    ('[button]\npin = 4\npress = "reboot"', "button.press = 'reboot' is not allowed"),
    ('[[outputs]]\nname = "a"\npin = 5\n[[outputs]]\nname = "b"\npin = 5',
     "output 'b' uses GPIO5, already used by output 'a'"),
    ('[button]\npin = 5\n[[outputs]]\nname = "b"\npin = 5', "output 'b' uses GPIO5, already used by button"),
    ('[[outputs]]\nname = "a"\npin = 5\n[[outputs]]\nname = "a"\npin = 6', "two outputs are named 'a'"),
    (LAMP.replace('output = "lamp"', 'output = "lamb"'), r"rule 'raised': actions\[0\].output = 'lamb' is not an \[\[outputs\]\] name \(have: lamp\)"),
    (PWM.replace('kind = "pwm"', 'kind = "led"'), "mode = 'follow' needs a kind = 'pwm' output; 'dimmer' is a led"),
    (LAMP + '[[rules]]\nname = "b"\nwhen = { people = 1 }\nactions = [ { output = "lamp", mode = "pulse" } ]',
     r"rule 'b': actions\[0\]: output 'lamp' is already driven by rule 'raised' \(hold\)"),
])
def test_wiring_errors_name_the_culprit(factory, table, message):
    with pytest.raises(PiposerError, match=message):
        sink(table, factory)


def test_button_press_asks_for_a_toggle_and_hold_takes_a_snapshot(factory):
    table = "[button]\npin = 4\nhold_time = 0.1\nbounce_time = 0"
    requests = []
    s = sink(table, factory, on_request=requests.append)
    pin = factory.pin(4)
    for _ in range(2):  # two short presses
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()     # press and hold
    deadline = time.monotonic() + 2
    while len(requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    pin.drive_high()
    s.close()
    assert requests == ["toggle", "toggle", "snapshot"]  # the app knows whether it is paused


def test_outputs_go_safe_at_exit_after_sigterm_or_a_crash(tmp_path):
    # A process that never calls close(), on gpiozero's default pin factory (whose own exit handler
    # closes every device): the relay must still be driven to its safe value at exit, after SIGTERM
    # (turned into SystemExit, as the appliance does) and after an unhandled exception. Each pin
    # change is printed as it happens.
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""
        import os, signal, sys, time
        os.environ["GPIOZERO_PIN_FACTORY"] = "mock"
        from piposer.rules import OutputSettings
        from piposer.sinks.gpio import RulesSink
        from piposer.rules import ActionSettings, Condition, RuleSettings
        from piposer.types import Frame
        from rules_poses import pose
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
        rule = RuleSettings(name="anyone", when=Condition(people=1), actions=[ActionSettings(output="relay")])
        sink = RulesSink([rule], [OutputSettings(name="relay", kind="relay", pin=17)])
        from gpiozero import Device
        pin = Device.pin_factory.pin(17)
        change = pin._change_state
        def traced(value):
            if change(value):
                print("pin", value, flush=True)
        pin._change_state = traced
        sink.publish(Frame(None, 0, 0.0), [pose()])
        if sys.argv[1] == "crash":
            raise RuntimeError("boom")
        time.sleep(30)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parent.parent)])}
    for mode in ("sigterm", "crash"):
        proc = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline() == "pin True\n"
        if mode == "sigterm":
            proc.terminate()
        proc.wait(timeout=20)
        assert proc.stdout.read() == "pin False\n", (mode, proc.stderr.read())
        proc.stdout.close()
        proc.stderr.close()


def test_pwm_on_mock_pins_without_pwm_names_the_reason_and_the_fix():
    """gpiozero's plain MockPin raises PinPWMUnsupported with no message: the error used to end in ': '."""
    from piposer.errors import PiposerError
    from piposer.rules import OutputSettings

    with pytest.raises(PiposerError) as caught:
        RulesSink([], [OutputSettings(name="dim", kind="pwm", pin=18)], pin_factory=MockFactory())
    assert str(caught.value) == ("output 'dim': cannot use GPIO18 as a pwm: this pin factory cannot do PWM "
                                 "(with GPIOZERO_PIN_FACTORY=mock, also set GPIOZERO_MOCK_PIN_CLASS=mockpwmpin)")
