"""The MQTT message contract without a broker: payload shapes, throttling, the outbox, discovery and settings."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from piposer.errors import PiposerError
from piposer.sinks.mqtt import MqttSettings
from piposer.sinks.outbox import Message, Outbox
from piposer.sinks.payloads import cpu_temperature, encode, percentiles_ms, poses_payload, state_payload
from piposer.sinks.throttle import Throttle
from piposer.types import COCO17, Frame, make_pose, pose_to_dict

IMAGE = np.zeros((480, 640, 3), np.uint8)


def person(dx: float = 0.0, score: float = 0.9, track_id=None):
    xy = np.column_stack([np.linspace(100, 300, 17) + dx, np.linspace(50, 400, 17)])
    scores = np.full(17, score)
    scores[0] = 0.1  # the nose is not detected
    pose = make_pose(COCO17, xy, scores, (640, 480), 0.3, 0.75)
    pose.track_id = track_id
    return pose


def frame(index: int = 0) -> Frame:
    return Frame(IMAGE, index, 100.0 + index, 1_700_000_000.0 + index)


def test_poses_payload_fields_and_values():
    data = json.loads(encode(poses_payload(frame(3), [person(track_id=5)], "posenet")))
    assert {k: v for k, v in data.items() if k != "poses"} == {
        "schema": 1, "timestamp": 1_700_000_003.0, "frame": 3, "width": 640, "height": 480, "model": "posenet",
    }
    (pose,) = data["poses"]
    assert pose["id"] == 5 and pose["score"] == 0.75 and pose["layout"] == "coco17"
    assert list(pose["keypoints"]) == list(COCO17.keypoints)
    assert pose["keypoints"]["nose"] == {"x": 100.0, "y": 50.0, "nx": 0.1562, "ny": 0.1042, "score": 0.1, "detected": False}
    assert pose["keypoints"]["right_ankle"] == {"x": 300.0, "y": 400.0, "nx": 0.4688, "ny": 0.8333, "score": 0.9, "detected": True}
    assert pose["bbox"] == [112.5, 71.9, 300.0, 400.0]  # spans detected keypoints only


def test_a_poses_dict_is_made_once_and_follows_its_id_label_and_keypoints():
    """MQTT, the WebSocket and files all ask for the same frame's dicts: the second asker gets the first's,
    unless the pose has changed since (an id, a label, new keypoints)."""
    pose = person()
    first = pose_to_dict(pose)
    assert pose_to_dict(pose) is first and "id" not in first
    pose.track_id = 7
    assert pose_to_dict(pose)["id"] == 7
    pose.label, pose.label_confidence = "wave", 0.8
    assert pose_to_dict(pose)["label"] == "wave"
    nose = pose.keypoints[0]
    pose.keypoints = (replace(nose, x=nose.x + 1.0), *pose.keypoints[1:])
    assert pose_to_dict(pose)["keypoints"]["nose"]["x"] == 101.0
    assert pose_to_dict(pose, digits=2)["keypoints"]["nose"]["nx"] == 0.16


def test_encode_is_compact_and_strict_json():
    assert encode({"a": [1, 2.5], "b": None}) == b'{"a":[1,2.5],"b":null}'
    # a NaN score from a glitching model becomes null instead of breaking strict parsers
    assert encode({"s": float("nan"), "t": [float("inf"), np.float32(0.5)]}) == b'{"s":null,"t":[null,0.5]}'
    assert encode({"n": np.int64(3), "a": np.arange(2)}) == b'{"n":3,"a":[0,1]}'


def test_state_payload():
    assert state_payload(0, 12.3456) == {"people": 0, "presence": False, "since": 12.346, "status": "running"}
    assert state_payload(0, 1.0, "paused")["status"] == "paused"
    assert state_payload(2, 1.0)["presence"] is True


def test_percentiles_ms():
    assert percentiles_ms([]) == {"p50": None, "p95": None}
    assert percentiles_ms([i / 1000 for i in range(1, 101)]) == {"p50": 50.5, "p95": 95.05}


def test_cpu_temperature(tmp_path):
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert cpu_temperature(zone) == 48.3
    assert cpu_temperature(tmp_path / "missing") is None


def test_throttle_rate_limit():
    throttle = Throttle(max_rate_hz=10)
    admitted = [t for t in np.arange(0, 1, 0.025) if throttle.admit(float(t), frame(), [person()])]
    assert np.allclose(admitted, np.arange(0, 1, 0.1))


def test_throttle_keeps_the_rate_despite_jitter_and_gaps():
    throttle = Throttle(max_rate_hz=10)
    times = np.arange(0, 3, 1 / 30) + np.random.default_rng(1).uniform(-0.004, 0.004, 90)
    assert sum(throttle.admit(float(t), frame(), []) for t in times) == 30  # every third frame of 30 fps
    # after a 5 s gap: one frame now, then the 10 Hz schedule again (no burst of catch-up frames)
    assert [throttle.admit(t, frame(), []) for t in (8.0, 8.03, 8.06, 8.1, 8.13)] == [True, False, False, True, False]


def test_throttle_only_on_change():
    throttle = Throttle(only_on_change=True, change_threshold=0.01)
    still, moved = person(), person(dx=10)  # 10 px of 640 = 0.0156
    assert [
        throttle.admit(0, frame(), []),
        throttle.admit(1, frame(), []),
        throttle.admit(2, frame(), [still]),
        throttle.admit(3, frame(), [person(dx=3)]),  # 0.0047: below the threshold
        throttle.admit(4, frame(), [moved]),
        throttle.admit(5, frame(), [person(dx=10, score=0.2)]),  # keypoints became undetected
        throttle.admit(6, frame(), [person(dx=10, score=0.2, track_id=1)]),  # now tracked
        throttle.admit(7, frame(), [person(dx=10, score=0.2, track_id=1)]),
        throttle.admit(8, frame(), []),
    ] == [True, False, True, False, True, True, True, False, True]


def test_outbox_drops_oldest_and_keeps_latest_values():
    box = Outbox(size=3)
    for i in range(5):
        box.put_pose(Message("p", b"%d" % i))
    box.put_event(Message("e", b"e"))
    box.put_latest(Message("state", b"old", retain=True))
    box.put_latest(Message("availability", b"online", retain=True))
    box.put_latest(Message("state", b"new", retain=True))
    assert box.drops == 2
    got = []
    while (m := box.get(timeout=0)) is not None:
        got.append((m.topic, m.payload))
    assert got == [("availability", b"online"), ("state", b"new"), ("e", b"e"), ("p", b"2"), ("p", b"3"), ("p", b"4")]


def test_settings_defaults_and_topics(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "livingroom.local")
    s = MqttSettings()
    assert (s.host, s.port, s.qos, s.device, s.base_topic) == ("localhost", 1883, 0, "livingroom", "piposer/livingroom")
    assert MqttSettings(prefix="home/pose", device_id="hall").base_topic == "home/pose/hall"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"port": 0}, "mqtt.port must be within 1..65535, not 0"),
        ({"prefix": "a/#"}, "mqtt.prefix = 'a/#' is not a valid topic part"),
        ({"prefix": "/a"}, "mqtt.prefix = '/a'"),
        ({"device_id": "a/b"}, "mqtt.device_id = 'a/b' is not a valid topic part (non-empty, no '+', '#', no '/')"),
        ({"discovery_prefix": ""}, "mqtt.discovery_prefix = ''"),
        ({"username": "u", "password": "p", "password_env": "X"}, "mqtt.password and mqtt.password_env are alternatives"),
        ({"password_file": "/x"}, "mqtt.password_file is set but mqtt.username is not"),
        ({"tls_ca": "/ca.pem"}, "mqtt.tls_ca is set but mqtt.tls is false"),
        ({"tls": True, "tls_cert": "/c.pem"}, "mqtt.tls_cert and mqtt.tls_key go together"),
        ({"queue_size": 0}, "mqtt.queue_size must be >= 1, not 0"),
        ({"max_rate_hz": -1.0}, "mqtt.max_rate_hz must be >= 0, not -1.0"),
        ({"reconnect_min_delay": 5.0, "reconnect_max_delay": 1.0}, "mqtt.reconnect_min_delay must be > 0 and <="),
    ],
)
def test_settings_validation_names_the_key(kwargs, message):
    with pytest.raises(ValueError) as info:
        MqttSettings(**kwargs)
    assert str(info.value).startswith(message)


def test_password_sources(tmp_path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert MqttSettings(username="u", password_file=str(secret)).resolve_password() == "s3cret"
    monkeypatch.setenv("PIPOSER_MQTT_PASSWORD", "from-env")
    assert MqttSettings(username="u", password_env="PIPOSER_MQTT_PASSWORD").resolve_password() == "from-env"
    assert MqttSettings(username="u", password="inline").resolve_password() == "inline"
    with pytest.raises(PiposerError, match=r"^mqtt.password_file: cannot read .*missing: No such file"):
        MqttSettings(username="u", password_file=str(tmp_path / "missing")).resolve_password()
    with pytest.raises(PiposerError, match="^mqtt.password_env: environment variable NOPE is not set"):
        MqttSettings(username="u", password_env="NOPE").resolve_password()


def test_password_never_in_repr_or_config_show():
    from piposer.config import as_dict

    s = MqttSettings(username="u", password="hunter2")
    assert "hunter2" not in repr(s)
    assert as_dict(s)["password"] == "***"
