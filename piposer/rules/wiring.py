"""What the rules drive: `[[outputs]]` (gpiozero devices on BCM pins), the `[button]`, and the
cross-checks between rules, outputs and pins that no single section can do alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import PiposerError
from .settings import NAME, RuleSettings, check_unique_names

BCM_PINS = range(0, 28)  # GPIO0..GPIO27 on the 40-pin header
DEVICE_CLASSES = {"relay": "DigitalOutputDevice", "led": "LED", "buzzer": "Buzzer", "pwm": "PWMOutputDevice"}


def _check_pin(where: str, pin: int) -> None:
    if pin not in BCM_PINS:
        raise ValueError(f"{where}.pin must be a BCM GPIO number {BCM_PINS.start}..{BCM_PINS.stop - 1} (GPIO17 is 17), not {pin}")


@dataclass
class OutputSettings:
    """One `[[outputs]]` entry: a gpiozero output device on a BCM pin.

    `kind` picks the device: relay (DigitalOutputDevice), led (LED), buzzer (Buzzer) or pwm
    (PWMOutputDevice, the only kind that may dim). `safe` is the value at start and on exit:
    0 (off) or 1 (on), or 0..1 for pwm. `active_high = false` for relay boards that switch on low.
    """

    name: str = ""
    kind: Literal["relay", "led", "buzzer", "pwm"] = "led"
    pin: int = -1
    active_high: bool = True
    safe: float = 0.0
    frequency: int | None = None

    def __post_init__(self):
        if not NAME.fullmatch(self.name):
            raise ValueError(f"outputs: every output needs a name of letters, digits, _ or - (got {self.name!r})")
        where = f"output '{self.name}'"
        _check_pin(where, self.pin)
        if self.kind == "pwm":
            if not 0.0 <= self.safe <= 1.0:
                raise ValueError(f"{where}.safe must be within 0..1, not {self.safe}")
            if self.frequency is not None and self.frequency <= 0:
                raise ValueError(f"{where}.frequency must be > 0 Hz, not {self.frequency}")
        else:
            if self.safe not in (0.0, 1.0):
                raise ValueError(f"{where}.safe must be 0 (off) or 1 (on) for a {self.kind}, not {self.safe}")
            if self.frequency is not None:
                raise ValueError(f"{where}.frequency is only for kind = 'pwm' (this one is a {self.kind})")


@dataclass
class ButtonSettings:
    """`[button]`: a push button to ground (pull_up) or to 3V3. A short press does `press`, holding
    it for `hold_time` seconds does `hold`; "pause" toggles between pause and resume."""

    pin: int = -1
    pull_up: bool = True
    bounce_time: float = 0.05
    hold_time: float = 2.0
    press: Literal["pause", "snapshot", "none"] = "pause"
    hold: Literal["pause", "snapshot", "none"] = "snapshot"

    def __post_init__(self):
        _check_pin("button", self.pin)
        if not 0.0 <= self.bounce_time <= 1.0:
            raise ValueError(f"button.bounce_time must be within 0..1 seconds, not {self.bounce_time}")
        if self.hold_time <= 0:
            raise ValueError(f"button.hold_time must be > 0 seconds, not {self.hold_time}")


def check_wiring(rules: list[RuleSettings], outputs: list[OutputSettings], button: ButtonSettings | None) -> None:
    """Cross-checks one section cannot do alone: unique names and pins, actions naming real outputs,
    follow only on PWM outputs, one mode per output. Raises PiposerError naming the culprit."""
    check_unique_names(rules)
    by_name: dict[str, OutputSettings] = {}
    pins: dict[int, str] = {button.pin: "button"} if button else {}
    for out in outputs:
        if out.name in by_name:
            raise PiposerError(f"config: two outputs are named {out.name!r}")
        if out.pin in pins:
            raise PiposerError(f"config: output '{out.name}' uses GPIO{out.pin}, already used by {pins[out.pin]}")
        by_name[out.name] = out
        pins[out.pin] = f"output '{out.name}'"
    modes: dict[str, tuple[str, str]] = {}
    for rule in rules:
        for i, action in enumerate(rule.actions):
            where = f"config: rule '{rule.name}': actions[{i}]"
            out = by_name.get(action.output)
            if out is None:
                have = ", ".join(by_name) or "none defined"
                raise PiposerError(f"{where}.output = {action.output!r} is not an [[outputs]] name (have: {have})")
            if action.mode == "follow" and out.kind != "pwm":
                raise PiposerError(f"{where}: mode = 'follow' needs a kind = 'pwm' output; '{out.name}' is a {out.kind}")
            previous = modes.setdefault(out.name, (action.mode, rule.name))
            if previous[0] != action.mode or (action.mode == "follow" and previous[1] != rule.name):
                raise PiposerError(
                    f"{where}: output '{out.name}' is already driven by rule '{previous[1]}' ({previous[0]});"
                    " several rules may only share an output to hold or pulse it"
                )
