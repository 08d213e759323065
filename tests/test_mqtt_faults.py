"""Hostile `set` payloads and unexpected exceptions must never end paho's network thread.

One `thresholds` command with a 400-digit integer used to raise OverflowError inside paho's
on_message: the network thread died, later commands went unanswered, availability stayed `online`
and the sink never reconnected. These tests use a real Mosquitto.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import pytest
from broker import Broker, Sinks, Subscriber
from hypothesis import given, settings as hsettings, strategies as st

from piposer.commands import COMMANDS, MAX_PAYLOAD, Command, CommandError, Pause, parse_command
from piposer.errors import PiposerError
from piposer.sinks import mqtt as mqtt_sink
from piposer.sinks.mqtt import MqttSink

HUGE = int("1" + "0" * 399)  # 400 digits: float(HUGE) raises OverflowError
BAD_SET = json.dumps({"command": "thresholds", "keypoint_threshold": HUGE, "id": "big"})


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def make_sink():
    """Sinks without discovery that record the commands they hand over in `sink.received`."""
    sinks = Sinks()

    def make(broker: Broker, **overrides) -> MqttSink:
        received: list[Command] = []
        sink = sinks.make(broker, on_request=received.append, discovery=False, **overrides)
        sink.received = received
        return sink

    yield make
    sinks.close()


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def without_timestamp(reply: dict) -> dict:
    assert isinstance(reply.pop("timestamp"), float)
    return reply


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload, message", [
    (BAD_SET, "keypoint_threshold must be within 0..1, not 1000000000"),
    (json.dumps({"command": "thresholds", "pose_threshold": -HUGE}), "pose_threshold must be within 0..1, not -100000"),
    ('{"command": "thresholds", "pose_threshold": Infinity}', "payload is not valid JSON (Infinity is not allowed)"),
    ('{"command": "thresholds", "pose_threshold": -Infinity}', "payload is not valid JSON (-Infinity is not allowed)"),
    ('{"command": "thresholds", "pose_threshold": 1e400}', "pose_threshold must be a number within 0..1, not inf"),
    ('{"command": ' + "[" * 1500 + "]" * 1500 + "}", "payload is not valid JSON"),
    ("[" * 900 + "]" * 900, "payload must be a JSON object"),
    ('{"command": "pause"}'.encode("utf-16"), "payload is not UTF-8 text"),
    (None, "payload must be bytes or text, not NoneType"),
    (42, "payload must be bytes or text, not int"),
])
def test_bad_payloads_are_command_errors(payload, message):
    with pytest.raises(CommandError) as info:
        parse_command(payload)
    text = str(info.value)
    assert message in text and "\n" not in text and len(text) < 160
    assert isinstance(info.value, PiposerError)


def test_deep_values_are_rejected_even_on_a_deep_stack():
    """json.loads succeeds a few frames up, the error message is built deeper: still a CommandError."""
    payload = '{"command": ' + "[" * 400 + "]" * 400 + "}"
    limit = sys.getrecursionlimit()

    def at_depth(n):
        if n:
            return at_depth(n - 1)
        with pytest.raises(CommandError):
            parse_command(payload)

    for depth in range(limit - 460, limit - 380, 4):
        at_depth(depth)


huge_ints = st.integers() | st.integers(min_value=-(10 ** 600), max_value=10 ** 600) | st.builds(
    lambda digits, sign: sign * int("9" * digits), st.integers(300, 1500), st.sampled_from([1, -1]))
scalars = st.none() | st.booleans() | huge_ints | st.floats() | st.text(max_size=10)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)
nested = st.builds(lambda depth, inner: "[" * depth + inner + "]" * depth,
                   st.integers(1, 2100), st.sampled_from(["", "1", '{"command": "pause"}']))
near_valid = st.fixed_dictionaries(
    {"command": st.sampled_from([*COMMANDS, "x"]) | json_values},
    optional={"id": json_values, "keypoint_threshold": json_values, "pose_threshold": json_values, "extra": json_values},
)
thresholds = st.fixed_dictionaries(
    {"command": st.just("thresholds")},
    optional={"id": scalars, "keypoint_threshold": huge_ints | st.floats(), "pose_threshold": huge_ints | st.floats()},
)


def _text(value) -> str:
    return json.dumps(value)  # NaN and inf come out as NaN / Infinity, which parse must refuse


@hsettings(max_examples=400, deadline=None)
@given(st.one_of(
    near_valid.map(_text),
    thresholds.map(_text),
    json_values.map(_text),
    nested,
    st.builds(lambda inner, key: '{"command": "thresholds", "%s": %s}' % (key, inner), nested,
              st.sampled_from(["keypoint_threshold", "pose_threshold", "id"])),
    st.binary(max_size=MAX_PAYLOAD + 10),
))
def test_fuzz_parse_only_returns_a_command_or_raises_command_error(payload):
    for form in (payload, payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload):
        try:
            command = parse_command(form)
        except CommandError as exc:
            assert str(exc) and "\n" not in str(exc) and len(str(exc)) < 200
        else:
            assert isinstance(command, Command) and command.name in COMMANDS
            for key in ("keypoint_threshold", "pose_threshold"):
                value = getattr(command, key, None)
                assert value is None or (isinstance(value, float) and 0.0 <= value <= 1.0)


# --- the sink on a real broker -----------------------------------------------------------------------


def test_huge_integer_leaves_the_network_thread_alive_and_reconnecting(broker, make_sink):
    sink = make_sink(broker)
    with Subscriber(broker, "piposer/test/events") as sub:
        sub.publish("piposer/test/set", BAD_SET)
        sub.publish("piposer/test/set", '{"command": "pause", "id": "p1"}')
        bad, good = [m.json() for m in sub.wait_for("piposer/test/events", 2)]
    assert bad["event"] == "command_error" and bad["id"] == "big"
    assert bad["error"].startswith("keypoint_threshold must be within 0..1, not 100000") and len(bad["error"]) < 120
    assert without_timestamp(good) == {"event": "command", "command": "pause", "id": "p1"}
    assert sink.received == [Pause(request_id="p1")]
    assert sink.healthy()

    broker.restart()
    wait_until(lambda: not sink.connected.is_set())
    assert sink.connected.wait(10), sink.last_error
    with Subscriber(broker, "piposer/test/availability") as sub:  # the restarted broker kept nothing
        (online,) = sub.wait_for("piposer/test/availability")
        assert online.payload == b"online"
    assert sink.reconnects == 1 and sink.healthy()


def test_unexpected_exception_is_answered_logged_once_and_survived(broker, make_sink, monkeypatch, caplog):
    sink = make_sink(broker)

    def broken(payload):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(mqtt_sink, "parse_command", broken)
    with caplog.at_level(logging.WARNING, logger="piposer.mqtt"), Subscriber(broker, "piposer/test/events") as sub:
        for i in range(3):
            sub.publish("piposer/test/set", json.dumps({"command": "snapshot", "id": f"s{i}"}))
        replies = [without_timestamp(m.json()) for m in sub.wait_for("piposer/test/events", 3)]
        assert replies == [
            {"event": "command_failed", "command": "snapshot", "id": f"s{i}",
             "error": "internal error: OverflowError: int too large to convert to float"}
            for i in range(3)
        ]
        monkeypatch.setattr(mqtt_sink, "parse_command", parse_command)
        sub.publish("piposer/test/set", '{"command": "pause", "id": "p2"}')
        reply = without_timestamp(sub.wait_for("piposer/test/events", 4)[-1].json())
        assert reply == {"event": "command", "command": "pause", "id": "p2"}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "OverflowError" in errors[0].getMessage()
    assert sink.healthy()


def test_failing_command_handler_is_answered_with_command_failed(broker, make_sink):
    sink = make_sink(broker)

    def refuse(command):
        raise RuntimeError("queue is closed")

    sink.on_request = refuse
    with Subscriber(broker, "piposer/test/events") as sub:
        sub.publish("piposer/test/set", '{"command": "reload", "id": 9}')
        replies = [without_timestamp(m.json()) for m in sub.wait_for("piposer/test/events", 2)]
    assert replies == [
        {"event": "command", "command": "reload", "id": 9},
        {"event": "command_failed", "command": "reload", "id": 9, "error": "internal error: RuntimeError: queue is closed"},
    ]
    assert sink.healthy()


def test_healthy_turns_false_when_the_network_thread_dies(broker, make_sink):
    """If paho's thread ends anyway (here: a raw callback bypassing the guard), healthy() says so and
    close() still leaves `offline` retained."""
    sink = make_sink(broker)

    def fatal(*args):
        raise SystemExit("simulated crash of paho's thread")

    sink._client.on_message = fatal
    with Subscriber(broker, "piposer/test/events") as sub:
        sub.publish("piposer/test/set", '{"command": "pause"}')
    wait_until(lambda: not sink.healthy())
    sink.close(timeout=1.0)
    with Subscriber(broker, "piposer/test/availability") as sub:
        wait_until(lambda: [m.payload for m in sub.on("piposer/test/availability")] == [b"offline"])
