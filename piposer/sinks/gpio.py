"""GPIO outputs driven by pose rules, and a push button that pauses or snapshots.

`RulesSink` is the Sink that runs the rules engine on every frame and moves gpiozero output
devices: relays and LEDs held on while a rule is active, pulses, buzzers, and PWM following a pose
quantity. Every output starts at its `safe` value and goes back to it on `close()`, which the
appliance calls on every exit path (and one atexit handler calls for any sink still open, as a last resort).
"""

from __future__ import annotations

import atexit
import functools
import logging
import time
import weakref
from typing import Callable

from ..errors import PiposerError
from ..events import Edge, EventKind
from ..rules.engine import Follower, Outcome, RulesEngine
from ..rules.settings import ActionSettings, RuleSettings
from ..rules.wiring import DEVICE_CLASSES, ButtonSettings, OutputSettings, check_wiring
from ..types import Frame, Pose
from . import Sink

log = logging.getLogger(__name__)


def make_device(settings: OutputSettings, pin_factory=None):
    """The gpiozero device for an output, starting at its safe value."""
    import gpiozero  # here, not at the top: loading the config (these settings) should not load gpiozero

    _register_exit_handler()

    cls = getattr(gpiozero, DEVICE_CLASSES[settings.kind])
    kwargs = {"active_high": settings.active_high, "pin_factory": pin_factory}
    if settings.kind == "pwm":
        kwargs["frequency"] = settings.frequency or 100
        kwargs["initial_value"] = settings.safe
    else:
        kwargs["initial_value"] = bool(settings.safe)
    return cls(settings.pin, **kwargs)


class Output:
    """One device and who drives it: rules holding it on, pulses, or a rule it follows."""

    def __init__(self, settings: OutputSettings, device):
        self.settings = settings
        self.device = device
        self.value: float = settings.safe

    def set(self, value: float) -> None:
        if value != self.value:
            self.device.value = value
            self.value = value

    def pulse(self, seconds: float) -> None:
        self.device.blink(on_time=seconds, off_time=0, n=1, background=True)
        self.value = 0.0  # where the pulse ends

    def make_safe(self) -> None:
        self.device.value = self.settings.safe  # also stops a running pulse
        self.value = self.settings.safe


class RulesSink(Sink):
    """Runs the rules on every frame and drives the outputs; reports edges through `on_event`.

    `emit("rule", rule=, edge="rising"|"falling", person=)` is called on every edge (and, with
    `reason="stopped"` or `"paused"`, for each rule still active when the sink closes or is paused), and
    `emit("rule_error", rule=, error=)` when a rule fails and is disabled; `on_request("toggle" |
    "snapshot")` when the button asks (from gpiozero's thread). `pin_factory` is passed to
    every gpiozero device (a MockFactory in tests); `clock` times the rules.
    """

    name = "RulesSink"

    def __init__(
        self,
        rules: list[RuleSettings],
        outputs: list[OutputSettings],
        *,
        button: ButtonSettings | None = None,
        emit: Callable[..., None] | None = None,
        on_request: Callable[[str], None] | None = None,
        pin_factory=None,
        clock: Callable[[], float] = time.monotonic,
        count_hold: float = 0.0,
    ):
        check_wiring(rules, outputs, button)
        self.engine = RulesEngine(rules, clock, count_hold)
        self.clock = clock
        self.count_hold = count_hold
        self.emit = emit
        self.on_request = on_request
        self.outputs: dict[str, Output] = {}
        self.button = None
        self.followers: dict[tuple[str, str], Follower] = {}
        self.hold_outputs = _held_by(rules)
        self.button_settings = button
        self._closed = False
        try:
            for settings in outputs:
                self.outputs[settings.name] = Output(settings, _build(settings, pin_factory))
            if button is not None:
                self.button = self._make_button(button, pin_factory)
        except BaseException:
            self.close()
            raise
        _OPEN.add(self)

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        if self._closed:
            return
        now = self.clock()
        outcomes, failed = self.engine.update(poses, now)
        for rule, message in failed:
            self._report_error(rule, message)
        held: set[str] = set()
        for outcome in outcomes:
            try:
                self._act(outcome, now, held)
            except Exception as exc:  # a broken action disables its rule, not the appliance
                message = f"{type(exc).__name__}: {exc}"
                self.engine.disable(outcome.rule.name, message)
                self._report_error(outcome.rule, message)
            for edge, person in outcome.edges:
                self._emit(EventKind.RULE, rule=outcome.rule.name, edge=edge, person=person)
        for name in self.hold_outputs:
            self.outputs[name].set(1.0 if name in held else 0.0)

    def _act(self, outcome: Outcome, now: float, held: set[str]) -> None:
        rule = outcome.rule
        rising = sum(edge == Edge.RISING for edge, _ in outcome.edges)
        for action in rule.actions:
            out = self.outputs[action.output]
            if action.mode == "hold" and outcome.active:
                held.add(action.output)
            elif action.mode == "pulse" and rising:
                out.pulse(action.pulse_seconds)
            elif action.mode == "follow":
                follower = self._follower(rule, action)
                if outcome.active:
                    value = follower.update(outcome.subject, now)
                    if value is not None:
                        out.set(round(value, 4))
                else:
                    follower.reset()
                    out.set(0.0)

    def _follower(self, rule: RuleSettings, action: ActionSettings) -> Follower:
        key = (rule.name, action.output)
        if key not in self.followers:
            self.followers[key] = Follower(action.follow, rule.min_score)
        return self.followers[key]

    def _report_error(self, rule: RuleSettings, message: str) -> None:
        for action in rule.actions:
            if action.mode == "follow":
                self.outputs[action.output].set(0.0)
        self._emit(EventKind.RULE_ERROR, rule=rule.name, error=message)

    def _emit(self, kind: str, **fields) -> None:
        if self.emit is None:
            return
        try:
            self.emit(kind, **fields)
        except Exception:  # an event that cannot be sent must not stop the outputs
            log.exception("could not report %s event %s", kind, fields)

    def _make_button(self, settings: ButtonSettings, pin_factory):
        import gpiozero

        try:
            button = gpiozero.Button(
                settings.pin, pull_up=settings.pull_up, bounce_time=settings.bounce_time or None,
                hold_time=settings.hold_time, pin_factory=pin_factory,
            )
        except Exception as exc:
            raise PiposerError(f"button: cannot use GPIO{settings.pin}: {_why(exc)}") from None
        state = {"held": False}

        def held():
            state["held"] = True
            self._request(settings.hold)

        def released():
            if not state["held"]:
                self._request(settings.press)
            state["held"] = False

        button.when_held = held
        button.when_released = released
        return button

    def _request(self, action: str) -> None:
        """Pass the button's action on; "pause" becomes "toggle", since only the app knows whether it is paused
        (MQTT may have paused or resumed it since the last press)."""
        if action == "none" or self.on_request is None:
            return
        self.on_request("toggle" if action == "pause" else action)

    def pause(self, reason: str) -> None:
        """Every output to its safe value now and every rule back to inactive, reporting a final `falling`
        event with `reason` for each rule that was active (pausing reports "paused", closing "stopped")."""
        for out in self.outputs.values():
            try:
                out.make_safe()
            except Exception:
                log.exception("could not set output %r to its safe value", out.settings.name)
        for rule, person in self.engine.active():  # subscribers should not wait for a falling edge forever
            self._emit(EventKind.RULE, rule=rule, edge=Edge.FALLING, person=person, reason=reason)
        self.engine.reset()
        self.followers.clear()

    def can_reconfigure(self, settings) -> bool:
        """New rules can be taken in place when the outputs and the button are the same: no pin is touched."""
        _rules, outputs, button, _count_hold = settings
        return outputs == [out.settings for out in self.outputs.values()] and button == self.button_settings

    def reconfigure(self, settings) -> None:
        """Run new rules on the same outputs. A rule whose settings did not change keeps its state (no edge,
        no flicker); an active rule that was changed or removed reports `falling` with reason "reload", and an
        output no unchanged rule drives goes back to its safe value until the new rules decide."""
        rules, outputs, button, self.count_hold = settings
        check_wiring(rules, outputs, button)
        engine = RulesEngine(rules, self.clock, self.count_hold)
        kept = engine.carry_over(self.engine)
        for rule, person in self.engine.active():
            if rule not in kept:
                self._emit(EventKind.RULE, rule=rule, edge=Edge.FALLING, person=person, reason="reload")
        still_driven = {a.output for r in rules if r.name in kept for a in r.actions}
        for name, out in self.outputs.items():
            if name not in still_driven:
                out.make_safe()
        self.followers = {key: f for key, f in self.followers.items() if key[0] in kept}
        self.engine = engine
        self.hold_outputs = _held_by(rules)

    def close(self) -> None:
        """Every output to its safe value, then release the pins. Safe to call twice or after a
        failed start."""
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        self.pause("stopped")
        devices = [out.device for out in self.outputs.values()]
        if self.button is not None:
            devices.append(self.button)
        for device in devices:
            try:
                device.close()
            except Exception:
                log.exception("could not release %r", device)

    def __enter__(self) -> RulesSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _held_by(rules: list[RuleSettings]) -> set[str]:
    return {a.output for r in rules for a in r.actions if a.mode == "hold"}


_OPEN: weakref.WeakSet[RulesSink] = weakref.WeakSet()


@functools.cache
def _register_exit_handler() -> None:
    """Once per process, after gpiozero is imported: atexit runs handlers last-in first-out, so ours runs
    before gpiozero's own (which closes every device on the default pin factory) and outputs reach safe values."""
    atexit.register(_close_all)


def _close_all() -> None:
    """The last resort at interpreter exit: every sink still open puts its outputs in their safe state."""
    for sink in list(_OPEN):
        sink.close()


def _build(settings: OutputSettings, pin_factory):
    try:
        return make_device(settings, pin_factory)
    except Exception as exc:
        raise PiposerError(f"output '{settings.name}': cannot use GPIO{settings.pin} as a {settings.kind}: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    from gpiozero.exc import BadPinFactory, PinPWMUnsupported

    if isinstance(exc, BadPinFactory):
        return ("no GPIO library found (not a Raspberry Pi, or lgpio not installed);"
                " GPIOZERO_PIN_FACTORY=mock runs the rules without real pins")
    if isinstance(exc, PinPWMUnsupported):
        return ("this pin factory cannot do PWM (with GPIOZERO_PIN_FACTORY=mock, also set "
                "GPIOZERO_MOCK_PIN_CLASS=mockpwmpin)")
    return str(exc) or type(exc).__name__
