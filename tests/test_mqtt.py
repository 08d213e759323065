"""The MQTT sink against a real Mosquitto: what a subscriber receives, the Last Will, broker outages,
authentication and `set` commands."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
from broker import Broker, Certificates, Sinks, Subscriber
from conftest import DATA, ROOT
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from piposer.commands import CommandError, Pause, SetThresholds, parse_command
from piposer.errors import PiposerError
from piposer.estimators import ModelSettings
from piposer.estimators.posenet import PoseNetEstimator, PoseNetSettings
from piposer.sinks.mqtt import MqttSettings, MqttSink
from piposer.sinks.mqtt_settings import MqttSetup
from piposer.types import COCO17, Frame, make_pose, pose_to_dict

IMAGE = np.zeros((480, 640, 3), np.uint8)


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def make_sink():
    """Build sinks on a test broker (`count_hold` and `setup` keys go to the sink's MqttSetup); all are
    closed at the end of the test."""
    sinks = Sinks()

    def make(broker: Broker, *, count_hold: float = 0.0, setup: dict | None = None, **options) -> MqttSink:
        return sinks.make(broker, MqttSetup(count_hold=count_hold, **(setup or {})), **options)

    yield make
    sinks.close()


def person(dx: float = 0.0):
    xy = np.column_stack([np.linspace(100, 300, 17) + dx, np.linspace(50, 400, 17)])
    return make_pose(COCO17, xy, np.full(17, 0.8), (640, 480), 0.3, 0.7)


def frame(index: int) -> Frame:
    return Frame(IMAGE, index, time.monotonic(), 1_700_000_000.0 + index)


def running(message) -> bool:
    """A `state` message from a detecting sink (not the "starting" one sent before the first frame)."""
    return message.json()["status"] == "running"


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_subscriber_receives_the_topic_contract(broker, make_sink):
    with Subscriber(broker, "piposer/#", "homeassistant/#") as sub:
        sink = make_sink(broker)
        poses = [person(), person(dx=200)]
        poses[1].track_id = 4
        for i, people in enumerate([poses, poses[:1], poses[:1], []]):
            sink.publish(frame(i), people)
            # state is last-value-wins when the link is busy: let each change arrive before the next
            sub.wait_for("piposer/test/poses", i + 1)
        sink.publish_event("rule", rule="wave", edge="rising", person=np.int64(4))
        sink.publish_stats({"fps": 12.5, "cpu_temp_c": 40.0})

        messages = sub.wait_for("piposer/test/poses", 4)
        first = messages[0].json()
        assert {k: v for k, v in first.items() if k != "poses"} == {
            "schema": 1, "timestamp": 1_700_000_000.0, "frame": 0, "width": 640, "height": 480, "model": "posenet",
        }
        assert first["poses"] == [pose_to_dict(p) for p in poses]
        assert [len(m.json()["poses"]) for m in messages] == [2, 1, 1, 0]
        assert not any(m.retain for m in messages)

        # state only on change: 2 people, 1, 0 (the repeated 1 sends nothing); a "starting" state before the
        # first frame may have been replaced by the first before it went out
        states = sub.wait_for("piposer/test/state", 3, where=running)
        assert [s.json() for s in states] == [
            {"people": 2, "presence": True, "since": 1_700_000_000.0, "status": "running"},
            {"people": 1, "presence": True, "since": 1_700_000_001.0, "status": "running"},
            {"people": 0, "presence": False, "since": 1_700_000_003.0, "status": "running"},
        ]

        (event,) = sub.wait_for("piposer/test/events")
        assert {k: v for k, v in event.json().items() if k != "timestamp"} == {
            "event": "rule", "rule": "wave", "edge": "rising", "person": 4,
        }
        (stats,) = sub.wait_for("piposer/test/stats")
        data = stats.json()
        assert data["fps"] == 12.5 and data["cpu_temp_c"] == 40.0  # the app's figures win
        assert "uptime_s" not in data  # uptime is the app's figure only (it resets on reload)
        assert data["mqtt"]["queue_drops"] == 0 and data["mqtt"]["unsent"] == 0 and data["mqtt"]["reconnects"] == 0
        assert data["mqtt"]["publish_latency_ms"]["p50"] >= 0
        assert "cpu_temp_c" in data

        configs = sub.wait_for("homeassistant/binary_sensor/test/presence/config")
        assert configs[0].json()["state_topic"] == "piposer/test/state"
        # Home Assistant restarting announces itself: discovery is sent again
        sub.publish("homeassistant/status", "online")
        sub.wait_for("homeassistant/binary_sensor/test/presence/config", 2)
        sub.wait_for("homeassistant/sensor/test/people/config", 2)
        sub.wait_for("homeassistant/sensor/test/fps/config", 2)

    # a late subscriber gets the retained topics: availability, state and discovery
    with Subscriber(broker, "#") as late:
        assert late.wait_for("piposer/test/availability")[0].payload == b"online"
        retained = {m.topic: m for m in late.wait_for("piposer/test/state")}
        assert retained["piposer/test/state"].retain and retained["piposer/test/state"].json()["people"] == 0
        assert all(m.retain for m in late.wait_for("homeassistant/sensor/test/fps/config"))
        assert not late.on("piposer/test/poses") and not late.on("piposer/test/events")
        sink.close()
        assert late.wait_for("piposer/test/availability", 2)[-1].payload == b"offline"

    with Subscriber(broker, "piposer/test/availability") as after:
        (offline,) = after.wait_for("piposer/test/availability")
        assert offline.retain and offline.payload == b"offline"


def test_state_count_is_debounced_by_count_hold(broker, make_sink):
    """A flickering count (2 people, one missed now and then) writes one state; a drop that holds for
    count_hold is published once it has held; the first person after nobody at once."""
    with Subscriber(broker, "piposer/test/state") as sub:
        sink = make_sink(broker, count_hold=1.0)
        two, one = [person(), person(dx=200)], [person()]
        t0 = time.monotonic()
        counts = [two, one, two, two, one, two] + [one] * 12 + [[]] * 12 + [one]
        changes = {0: 1, 16: 2, 28: 3, 30: 4}  # frame -> states expected by then (the 2-1-2 flickers write none)
        for i, poses in enumerate(counts):  # 10 fps
            sink.publish(Frame(IMAGE, i, t0 + i / 10, 1_700_000_000.0 + i / 10), poses)
            if i in changes:  # state is last-value-wins when the link is busy: let each change arrive
                sub.wait_for("piposer/test/state", changes[i], where=running)
        time.sleep(0.3)
        assert [(m.json()["people"], m.json()["since"]) for m in sub.on("piposer/test/state") if running(m)] == [
            (2, 1_700_000_000.0), (1, 1_700_000_001.6), (0, 1_700_000_002.8), (1, 1_700_000_003.0)]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["crash", "hang"])
def test_last_will_on_unclean_disconnect(broker, tmp_path, how):
    """A crash closes the socket without DISCONNECT; a hang (or a pulled cable) leaves it open until the
    broker's keepalive check (1.5 x keepalive) gives up. Either way the broker publishes `offline`."""
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from piposer.sinks.mqtt import MqttSettings, MqttSink
        sink = MqttSink(MqttSettings(host="127.0.0.1", port={broker.port}, device_id="crash", discovery=False,
                                     keepalive=1))
        sink.start()
        print("connected" if sink.connected.wait(5) else "failed", flush=True)
        time.sleep(60)
    """))
    with Subscriber(broker, "piposer/crash/availability") as sub:
        process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline().strip() == "connected"
            sub.wait_for("piposer/crash/availability", where=lambda m: m.payload == b"online")
            process.send_signal(how)
            # mosquitto 2.0 checks keepalives every few seconds: a hang takes ~5 s to notice
            offline = sub.wait_for("piposer/crash/availability", timeout=15, where=lambda m: m.payload == b"offline")
        finally:
            process.kill()
            process.wait()
            process.stdout.close()
        assert len(offline) == 1
    with Subscriber(broker, "piposer/crash/availability") as late:
        assert late.wait_for("piposer/crash/availability")[0].payload == b"offline"


def test_broker_down_at_start_is_a_warning_and_a_retry(tmp_path, make_sink, caplog):
    caplog.set_level(logging.DEBUG, logger="piposer.mqtt")
    broker = Broker(tmp_path / "broker")  # not started yet
    sink = make_sink(broker, start=False)
    sink.start()  # does not raise
    sink.publish(frame(0), [person()])
    wait_until(lambda: sink.last_error is not None)
    assert sink.last_error.startswith(f"cannot reach MQTT broker 127.0.0.1:{broker.port}; retrying")
    time.sleep(0.5)  # several retries, one warning
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [sink.last_error]
    with broker:
        with Subscriber(broker, "piposer/test/#") as sub:
            assert sink.connected.wait(5)
            assert sub.wait_for("piposer/test/availability")[-1].payload == b"online"
            assert sub.wait_for("piposer/test/state")[-1].json()["people"] == 1
            assert sub.wait_for("piposer/test/poses")[0].json()["frame"] == 0  # queued while down
            assert sink.last_error is None
        sink.close()


def test_broker_restart_mid_run(tmp_path, make_sink):
    # persistence keeps the subscriber's session over the restart, so it sees what was sent before it is back
    broker = Broker(tmp_path / "broker", persistence=True, extra=("queue_qos0_messages true",))
    with broker, Subscriber(broker, "piposer/test/poses", "piposer/test/stats", session="watcher") as sub:
        sink = make_sink(broker, queue_size=5)
        for i in range(3):
            sink.publish(frame(i), [person()])
        sub.wait_for("piposer/test/poses", 3)

        broker.stop()
        wait_until(lambda: not sink.connected.is_set())
        started = time.monotonic()
        for i in range(3, 15):
            sink.publish(frame(i), [person()])
        assert time.monotonic() - started < 0.5  # nothing blocks while the broker is away

        broker.start()
        assert sink.connected.wait(5)
        sub.wait_for("piposer/test/poses", 8)
        sink.publish(frame(15), [person()])
        received = sub.wait_for("piposer/test/poses", 9)
        # the queue of 5 kept the newest frames; 7 were dropped and counted
        assert [m.json()["frame"] for m in received] == [0, 1, 2, 10, 11, 12, 13, 14, 15]
        sink.publish_stats({})
        mqtt_stats = sub.wait_for("piposer/test/stats")[-1].json()["mqtt"]
        assert (mqtt_stats["queue_drops"], mqtt_stats["unsent"], mqtt_stats["reconnects"]) == (7, 0, 1)


def test_authentication(tmp_path, make_sink, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    with Broker(tmp_path / "broker", users={"pi": "correct horse"}) as broker:
        wrong = make_sink(broker, start=False, username="pi", password="wrong battery")
        wrong.start()
        wait_until(lambda: wrong.last_error is not None)
        assert wrong.last_error == (
            f"MQTT broker 127.0.0.1:{broker.port} refused the connection: Not authorized"
            " (check mqtt.username and the password)"
        )
        time.sleep(0.4)  # it keeps retrying quietly
        assert not wrong.connected.is_set()
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [wrong.last_error]
        wrong.close()

        monkeypatch.setenv("TEST_MQTT_PASSWORD", "correct horse")
        with Subscriber(broker, "piposer/#", username="pi", password="correct horse") as sub:
            make_sink(broker, username="pi", password_env="TEST_MQTT_PASSWORD")
            assert sub.wait_for("piposer/test/availability")[-1].payload == b"online"
    assert "correct horse" not in caplog.text and "wrong battery" not in caplog.text


def test_set_commands(broker, make_sink):
    received = []
    make_sink(broker, on_request=received.append)
    with Subscriber(broker, "piposer/test/events") as sub:
        sub.publish("piposer/test/set", '{"command": "pause", "id": "a1"}')
        sub.publish("piposer/test/set", '{"command": "thresholds", "keypoint_threshold": 0.25}')
        sub.publish("piposer/test/set", '{"command": "thresholds", "keypoint_threshold": 2}')
        sub.publish("piposer/test/set", "pause")
        events = [m.json() for m in sub.wait_for("piposer/test/events", 4)]
        assert [(e["event"], e.get("command"), e["id"]) for e in events[:2]] == [
            ("command", "pause", "a1"), ("command", "thresholds", None),
        ]
        assert [(e["event"], e["error"]) for e in events[2:]] == [
            ("command_error", "keypoint_threshold must be within 0..1, not 2"),
            ("command_error", "payload is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        ]
        assert received == [Pause(request_id="a1"), SetThresholds(keypoint_threshold=0.25)]


def test_retained_command_is_not_replayed_on_reconnect(broker, make_sink):
    received = []
    with Subscriber(broker, "piposer/test/events") as sub:
        sub.publish("piposer/test/set", '{"command": "snapshot"}', retain=True)
        make_sink(broker, on_request=received.append)
        (event,) = sub.wait_for("piposer/test/events")
        assert event.json()["error"] == "retained commands are ignored: publish to set without the retain flag"
        assert received == []


def test_fuzzed_set_payloads_change_nothing(broker, make_sink):
    received = []
    sink = make_sink(broker, on_request=received.append, discovery=False)
    with Subscriber(broker, "piposer/test/events") as sub:

        @hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
        def roundtrip(payload):
            before, commands = len(sub.on("piposer/test/events")), len(received)
            sub.publish("piposer/test/set", payload)
            reply = sub.wait_for("piposer/test/events", before + 1)[-1].json()
            try:
                expected = parse_command(payload)
            except CommandError as exc:
                assert (reply["event"], reply["error"]) == ("command_error", str(exc))
                assert len(received) == commands
            else:
                assert reply["event"] == "command" and received[-1] == expected

        roundtrip()
    assert sink.connected.is_set()


def test_real_model_poses_on_a_real_image(broker, make_sink):
    """PoseNet on a COCO photo of one person: what arrives on MQTT is the model's output, near the ground truth."""
    coco = json.loads((DATA / "coco_dev" / "person_keypoints.json").read_text())
    (image_info,) = [i for i in coco["images"] if i["file_name"] == "000000000785.jpg"]
    (truth,) = [a for a in coco["annotations"] if a["image_id"] == image_info["id"]]
    truth_xyv = np.array(truth["keypoints"], dtype=float).reshape(17, 3)

    estimator = PoseNetEstimator(ModelSettings(), PoseNetSettings())
    try:
        image = cv2.imread(str(DATA / "coco_dev" / "images" / image_info["file_name"]))
        shot = Frame(image, 7, time.monotonic(), 1_700_000_123.5)
        poses = estimator.estimate(shot)
    finally:
        estimator.close()
    with Subscriber(broker, "piposer/test/#") as sub:
        sink = make_sink(broker)
        sink.publish(shot, poses)
        data = sub.wait_for("piposer/test/poses")[0].json()
        state = sub.wait_for("piposer/test/state", where=running)[0].json()

    assert {k: data[k] for k in ("frame", "timestamp", "width", "height", "model")} == {
        "frame": 7, "timestamp": 1_700_000_123.5, "width": 640, "height": 425, "model": "posenet",
    }
    assert data["poses"] == [pose_to_dict(p) for p in poses]
    assert state == {"people": 1, "presence": True, "since": 1_700_000_123.5, "status": "running"}
    (pose,) = data["poses"]
    keypoints = [pose["keypoints"][name] for name in COCO17.keypoints]
    xy = np.array([(k["x"], k["y"]) for k in keypoints])
    nxy = np.array([(k["nx"], k["ny"]) for k in keypoints])
    np.testing.assert_allclose(nxy, xy / (640, 425), atol=1e-3)
    labelled = truth_xyv[:, 2] > 0
    errors = np.linalg.norm(xy[labelled] - truth_xyv[labelled, :2], axis=1)
    assert np.median(errors) < 12, errors  # pixels, on a 640x425 photo
    assert all(pose["keypoints"][name]["detected"] for name in ("nose", "left_shoulder", "right_shoulder"))


def test_tls_with_client_certificate(tmp_path, make_sink):
    certs = Certificates.create(tmp_path / "tls")
    with Broker(tmp_path / "broker", extra=certs.broker_config()) as broker:
        sink = make_sink(broker, tls=True, tls_ca=str(certs.ca), tls_cert=str(certs.client_cert),
                         tls_key=str(certs.client_key))
        sink.publish(frame(0), [person()])
        # the broker only speaks TLS with a client certificate: a plain client is turned away
        plain = make_sink(broker, start=False, device_id="plain")
        plain.start()
        wait_until(lambda: plain.last_error is not None)
        assert plain.last_error == (f"MQTT broker 127.0.0.1:{broker.port} closed the connection before accepting it: "
                                    "check mqtt.tls and the TLS files")
        assert not plain.connected.is_set()
        with Subscriber(broker, "#", tls=certs) as sub:
            assert sub.wait_for("piposer/test/state")[0].json()["people"] == 1
            assert not sub.on("piposer/plain/availability")


def test_tls_file_errors_name_the_key(tmp_path):
    missing = tmp_path / "missing-ca.crt"
    with pytest.raises(PiposerError, match=f"^mqtt.tls_ca: no such file {missing}$"):
        MqttSink(MqttSettings(tls=True, tls_ca=str(missing)))
    garbage = tmp_path / "ca.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(PiposerError, match="^mqtt.tls_ca / tls_cert / tls_key: cannot load the TLS files: "):
        MqttSink(MqttSettings(tls=True, tls_ca=str(garbage)))


def test_close_while_broker_unreachable_returns_promptly(tmp_path, make_sink):
    sink = make_sink(Broker(tmp_path / "never-started"), start=False)
    sink.start()
    sink.publish(frame(0), [person()])
    wait_until(lambda: sink.last_error is not None)
    started = time.monotonic()
    sink.close(timeout=1.0)
    assert time.monotonic() - started < 2.5


def test_frozen_broker_never_blocks_the_frame_loop(broker, make_sink):
    """A broker that keeps the socket open but reads nothing (pulled cable, hung host): the sink stops
    handing messages to the network once its window is full, drops the oldest and closes on time."""
    sink = make_sink(broker, queue_size=20)
    broker.freeze()
    try:
        blob = "x" * 100_000
        started = time.monotonic()
        for i in range(300):  # 30 MB: more than the kernel's socket buffers hold
            sink.publish_event("bulk", n=i, blob=blob)
        assert time.monotonic() - started < 2.0
        wait_until(lambda: sink.queue_drops > 0)
        started = time.monotonic()
        sink.close(timeout=1.0)
        assert time.monotonic() - started < 2.5
    finally:
        broker.thaw()


def test_rate_limit_uses_the_injected_clock_and_state_still_follows_every_frame(broker, make_sink):
    now = [0.0]
    settings = MqttSettings(host=broker.host, port=broker.port, device_id="test", discovery=False, max_rate_hz=10)
    sink = MqttSink(settings, clock=lambda: now[0])
    sink.start()
    try:
        assert sink.connected.wait(5)
        with Subscriber(broker, "piposer/test/poses", "piposer/test/state") as sub:
            for i in range(10):  # 20 fps for half a second
                now[0] = i * 0.05
                sink.publish(frame(i), [person()] if i < 9 else [])
                sub.wait_for("piposer/test/state", 1 if i < 9 else 2, where=running)
            now[0] = 1.0
            sink.publish(frame(10), [])  # admitted again: everything before it has arrived by then
            received = sub.wait_for("piposer/test/poses", 6)
            assert [m.json()["frame"] for m in received] == [0, 2, 4, 6, 8, 10]
            assert [m.json()["people"] for m in sub.on("piposer/test/state") if running(m)] == [1, 0]  # frame 9
    finally:
        sink.close()
