"""`set` command parsing: every valid form, every kind of malformed payload, and fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from piposer.commands import (
    COMMANDS, MAX_PAYLOAD, CommandError, Pause, ReloadConfig, Resume, SetThresholds, Snapshot, parse_command,
)


@pytest.mark.parametrize(
    "payload, expected",
    [
        ('{"command": "pause"}', Pause()),
        (b'{"command": "resume", "id": "r1"}', Resume(request_id="r1")),
        ('{"command": "snapshot", "id": 7}', Snapshot(request_id=7)),
        ('{"command": "reload"}', ReloadConfig()),
        ('{"command": "thresholds", "keypoint_threshold": 0.4}', SetThresholds(keypoint_threshold=0.4)),
        ('{"command": "thresholds", "pose_threshold": 1, "keypoint_threshold": 0}',
         SetThresholds(keypoint_threshold=0.0, pose_threshold=1.0)),
    ],
)
def test_valid_commands(payload, expected):
    command = parse_command(payload)
    assert command == expected
    assert type(command) is type(expected)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\xff\xfe", "payload is not UTF-8 text"),
        (b"", "payload is empty"),
        (" \n", "payload is empty"),
        ("pause", "payload is not valid JSON"),
        ('{"command": "pause"', "payload is not valid JSON"),
        ('["pause"]', 'payload must be a JSON object like {"command": "pause"}, not list'),
        ('"pause"', "not str"),
        ("{}", 'missing "command" (one of: pause, resume, snapshot, reload, thresholds)'),
        ('{"command": "jump"}', "unknown command 'jump' (one of: pause, resume, snapshot, reload, thresholds)"),
        ('{"command": 3}', "unknown command 3"),
        ('{"command": "pause", "force": true}', "command 'pause' takes no key 'force' (allowed: command, id)"),
        ('{"command": "thresholds"}', "command 'thresholds' needs keypoint_threshold and/or pose_threshold"),
        ('{"command": "thresholds", "keypoint_threshold": 1.5}', "keypoint_threshold must be within 0..1, not 1.5"),
        ('{"command": "thresholds", "pose_threshold": "0.5"}', "pose_threshold must be a number within 0..1, not '0.5'"),
        ('{"command": "thresholds", "pose_threshold": true}', "pose_threshold must be a number within 0..1, not True"),
        ('{"command": "thresholds", "pose_threshold": NaN}', "payload is not valid JSON (NaN is not allowed)"),
        ('{"command": "thresholds", "pose_threshold": 1e999}', "pose_threshold must be a number within 0..1, not inf"),
        ('{"command": "pause", "id": [1]}', '"id" must be a string (at most 64 characters) or an integer'),
        ('{"command": "pause", "id": "' + "x" * 65 + '"}', '"id" must be a string'),
        ("[" * 5000, "payload too large (5000 bytes, at most 4096)"),
        ("[" * 4000, "payload is not valid JSON"),
    ],
)
def test_malformed_commands_name_the_problem(payload, message):
    with pytest.raises(CommandError) as info:
        parse_command(payload)
    assert message in str(info.value)


def test_error_carries_the_request_id_when_readable():
    with pytest.raises(CommandError) as info:
        parse_command('{"command": "thresholds", "keypoint_threshold": -1, "id": "abc"}')
    assert info.value.request_id == "abc"
    assert str(info.value) == "keypoint_threshold must be within 0..1, not -1"


def test_error_messages_stay_short_for_huge_values():
    with pytest.raises(CommandError) as info:
        parse_command(json.dumps({"command": "x" * 3000}))
    assert len(str(info.value)) < 120


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {"command": st.sampled_from([*COMMANDS, "Pause", ""]) | json_values},
    optional={
        "id": json_values,
        "keypoint_threshold": json_values | st.floats(-2, 2),
        "pose_threshold": json_values | st.floats(-2, 2),
        "extra": json_values,
    },
)


def _parses_or_explains(payload) -> None:
    try:
        command = parse_command(payload)
    except CommandError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert command.name in COMMANDS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=MAX_PAYLOAD + 10))
def test_fuzz_bytes(payload):
    _parses_or_explains(payload)


@settings(max_examples=300, deadline=None)
@given(near_valid)
def test_fuzz_near_valid_objects(data):
    payload = json.dumps(data)
    try:
        command = parse_command(payload)
    except CommandError:
        return
    # whatever was accepted is exactly what was asked for, within range
    assert command.name == data["command"]
    for key in ("keypoint_threshold", "pose_threshold"):
        value = getattr(command, key, None)
        assert value is None or (0.0 <= value <= 1.0 and value == data[key])
    assert set(data) <= {"command", "id", "keypoint_threshold", "pose_threshold"}
