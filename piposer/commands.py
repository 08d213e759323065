"""Commands arriving on the MQTT `set` topic, parsed and validated into small dataclasses.

Parsing is pure and strict: a payload is either one well-formed command or a `CommandError`
whose message names the problem, so a malformed message can never change anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import ClassVar

from .errors import PiposerError

MAX_PAYLOAD = 4096


class CommandError(PiposerError):
    """A `set` payload that is not a valid command; `request_id` is echoed in the reply when it was readable."""

    def __init__(self, message: str, request_id: str | int | None = None):
        super().__init__(message)
        self.request_id = request_id


@dataclass(frozen=True, kw_only=True)
class Command:
    """Base of all commands; `request_id` is the optional `"id"` the sender may attach to match replies."""

    name: ClassVar[str] = ""
    request_id: str | int | None = None


@dataclass(frozen=True, kw_only=True)
class Pause(Command):
    """Stop running the model and publishing poses until `resume`."""

    name: ClassVar[str] = "pause"


@dataclass(frozen=True, kw_only=True)
class Resume(Command):
    """Undo `pause`."""

    name: ClassVar[str] = "resume"


@dataclass(frozen=True, kw_only=True)
class TogglePause(Command):
    """`pause` when running, `resume` when paused: what the GPIO button asks for (not an MQTT command)."""

    name: ClassVar[str] = "toggle"


@dataclass(frozen=True, kw_only=True)
class Snapshot(Command):
    """Save the next frame (with its poses drawn) where the app keeps snapshots."""

    name: ClassVar[str] = "snapshot"


@dataclass(frozen=True, kw_only=True)
class ReloadConfig(Command):
    """Re-read the config file and apply it."""

    name: ClassVar[str] = "reload"


@dataclass(frozen=True, kw_only=True)
class SetThresholds(Command):
    """Change the keypoint and/or pose score thresholds (each within 0..1) until the next restart."""

    name: ClassVar[str] = "thresholds"
    keypoint_threshold: float | None = None
    pose_threshold: float | None = None


COMMANDS: dict[str, type[Command]] = {c.name: c for c in (Pause, Resume, Snapshot, ReloadConfig, SetThresholds)}
THRESHOLDS = ("keypoint_threshold", "pose_threshold")


def parse_command(payload: bytes | str) -> Command:
    """Turn a `set` payload such as `{"command": "thresholds", "keypoint_threshold": 0.4}` into a Command."""
    data = _json_object(payload)
    request_id = _request_id(data)
    try:
        return _build(data, request_id)
    except CommandError as exc:
        raise CommandError(str(exc), request_id) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:  # a case the checks above missed
        raise CommandError(f"payload cannot be used ({type(exc).__name__}: {_short(exc, 80)})", request_id) from None


def _json_object(payload: bytes | str) -> dict:
    if not isinstance(payload, (bytes, bytearray, str)):
        raise CommandError(f"payload must be bytes or text, not {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload too large ({len(payload)} bytes, at most {MAX_PAYLOAD})")
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("payload is not UTF-8 text") from None
    if not payload.strip():
        raise CommandError("payload is empty")
    try:
        data = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise CommandError(f"payload is not valid JSON ({_short(exc, 80)})") from None
    if not isinstance(data, dict):
        raise CommandError(f'payload must be a JSON object like {{"command": "pause"}}, not {type(data).__name__}')
    return data


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _request_id(data: dict) -> str | int | None:
    request_id = data.get("id")
    valid = request_id is None or (isinstance(request_id, (str, int)) and not isinstance(request_id, bool))
    if not valid or (isinstance(request_id, str) and len(request_id) > 64):
        raise CommandError('"id" must be a string (at most 64 characters) or an integer')
    return request_id


def _build(data: dict, request_id: str | int | None) -> Command:
    name = data.get("command")
    if name is None:
        raise CommandError(f'missing "command" (one of: {", ".join(COMMANDS)})')
    if not isinstance(name, str) or name not in COMMANDS:
        raise CommandError(f'unknown command {_short(name)} (one of: {", ".join(COMMANDS)})')
    cls = COMMANDS[name]
    allowed = {"command", "id", *(THRESHOLDS if cls is SetThresholds else ())}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CommandError(f"command {name!r} takes no key {_short(unknown[0])} (allowed: {', '.join(sorted(allowed))})")
    if cls is not SetThresholds:
        return cls(request_id=request_id)
    values = {key: _threshold(key, data[key]) for key in THRESHOLDS if key in data}
    if not values:
        raise CommandError(f"command 'thresholds' needs {' and/or '.join(THRESHOLDS)}")
    return SetThresholds(request_id=request_id, **values)


def _threshold(key: str, value) -> float:
    # ints are compared as ints: float() of a 400-digit integer raises OverflowError
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (isinstance(value, float) and not math.isfinite(value)):
        raise CommandError(f"{key} must be a number within 0..1, not {_short(value)}")
    if not 0 <= value <= 1:
        raise CommandError(f"{key} must be within 0..1, not {_short(value)}")
    return float(value)


def _short(value, limit: int = 40) -> str:
    """repr() cut to `limit` characters, so an error reply never echoes a huge payload."""
    try:
        text = repr(value) if not isinstance(value, Exception) else str(value)
    except (ValueError, RecursionError):  # an int beyond Python's digit limit, a value nested too deep
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())  # one line, whatever the value held
    return text if len(text) <= limit else text[: limit - 3] + "..."
