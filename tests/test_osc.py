"""The OSC sink with real receivers: python-osc's server and the npm `osc` package in Node, on a real run
over the sample video whose poses also go to a real Mosquitto broker, so both are checked against MQTT."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import numpy as np
import pytest
from broker import Broker, Subscriber
from conftest import ROOT
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from test_app import make_config

from piposer.rules import Condition, RuleSettings, Zone
from piposer.runtime.controller import App
from piposer.sinks.mqtt import MqttSettings
from piposer.sinks.osc import OscSink, bundles
from piposer.sinks.osc_settings import OscSettings
from piposer.types import Frame

NODE = ROOT / "tests" / "osc_node"
FRAMES = 30


class PythonReceiver:
    """python-osc's blocking UDP server in a thread: every message, in arrival order."""

    def __init__(self):
        self.messages: list[tuple[str, list]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, list(args))))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class NodeReceiver:
    """The npm `osc` package in a Node process, printing what it decodes as JSON lines."""

    def __init__(self):
        self.process = subprocess.Popen(["node", str(NODE / "receive.js")], stdout=subprocess.PIPE, text=True,
                                        cwd=NODE)
        self.port = json.loads(self.process.stdout.readline())["port"]

    def messages(self) -> list[tuple[str, list]]:
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        return [(m["address"], m["args"]) for m in map(json.loads, out.splitlines())]


def by_frame(messages):
    """{frame index: {address: args}} from the messages that follow each `.../frame` (first of each address:
    what comes after a frame's bundle, such as the `people 0` of the close, belongs to no frame)."""
    frames, current = {}, None
    for address, args in messages:
        if address.endswith("/frame"):
            current = frames.setdefault(args[0], {})
        if current is not None:
            current.setdefault(address, args)
    return frames


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One real run: 30 frames of room_pair.mp4, tracked, with a rule; poses to MQTT, python-osc and Node."""
    with Broker(tmp_path_factory.mktemp("broker")) as mosquitto:
        python, node = PythonReceiver(), NodeReceiver()
        cfg = make_config(mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, device_id="osc",
                                            discovery=False, qos=1))
        cfg.tracking.enabled = True
        cfg.rules = [RuleSettings(name="left_half", actions=[],
                                  when=Condition(zone=Zone(keypoint="nose", rect=[0.0, 0.0, 0.5, 1.0])))]
        cfg.osc = [OscSettings(port=python.port),
                   OscSettings(port=node.port, prefix="/room", coordinates="pixels", layout="flat",
                               keypoints=["nose", "left_wrist", "right_wrist"])]
        with Subscriber(mosquitto, "piposer/osc/#") as sub:
            with App(cfg, log=lambda line: None) as app:
                assert app.run(max_frames=FRAMES) == "finished"
            mqtt = {m.json()["frame"]: m.json() for m in sub.wait_for("piposer/osc/poses", FRAMES)}
            rule_edges = [m.json() for m in sub.on("piposer/osc/events") if m.json()["event"] == "rule"]
        python.close()
        yield mqtt, python.messages, node.messages(), rule_edges


def test_python_osc_gets_every_frame_matching_mqtt(recorded):
    mqtt, messages, _, _ = recorded
    frames = by_frame(messages)
    assert sorted(frames) == sorted(mqtt) and len(frames) == FRAMES
    checked = 0
    for index, payload in mqtt.items():
        got = frames[index]
        assert got["/piposer/people"] == [len(payload["poses"])]
        for pose in payload["poses"]:
            person, (x0, y0, x1, y1) = pose["id"], pose["bbox"]
            box = [x0 / payload["width"], y0 / payload["height"], x1 / payload["width"], y1 / payload["height"]]
            assert got[f"/piposer/pose/{person}"] == pytest.approx([pose["score"], *box], abs=1e-3)
            for name, kp in pose["keypoints"].items():
                x, y, score = got[f"/piposer/pose/{person}/{name}"]
                assert (x, y, score) == pytest.approx((kp["nx"], kp["ny"], kp["score"]), abs=1e-3)
                checked += 1
    assert checked >= FRAMES * 17  # at least one person in every frame of this clip


def test_node_osc_gets_flat_pixel_keypoints_matching_mqtt(recorded):
    mqtt, _, messages, _ = recorded
    frames = by_frame(messages)
    assert sorted(frames) == sorted(mqtt)
    for index, payload in mqtt.items():
        got = frames[index]
        assert got["/room/frame"] == [index, payload["width"], payload["height"]]
        for pose in payload["poses"]:
            wanted = [pose["keypoints"][name] for name in ("nose", "left_wrist", "right_wrist")]
            expected = [v for kp in wanted for v in (kp["x"], kp["y"], kp["score"])]
            assert got[f"/room/pose/{pose['id']}/keypoints"] == pytest.approx(expected, abs=0.05)
            assert f"/room/pose/{pose['id']}/nose" not in got


def test_enter_leave_and_rule_edges(recorded):
    mqtt, messages, _, rule_edges = recorded
    ids = sorted({pose["id"] for payload in mqtt.values() for pose in payload["poses"]})
    entered = [args[0] for address, args in messages if address == "/piposer/enter"]
    left = [args[0] for address, args in messages if address == "/piposer/leave"]
    assert sorted(entered) == ids and sorted(left) == ids  # everyone leaves when the run closes
    events = [(address, args) for address, args in messages if address.startswith("/piposer/event/")]
    assert [("/piposer/event/left_half", [e["edge"], -1 if e.get("person") is None else e["person"]])
            for e in rule_edges] == events and events


def test_a_destination_that_does_not_listen_does_not_stop_the_others():
    listening = PythonReceiver()
    sink = OscSink([OscSettings(port=9), OscSettings(port=listening.port)], log=lambda line: None)
    try:
        for index in range(50):
            sink.publish(Frame(np.zeros((48, 64, 3), np.uint8), index, index / 30), [])
    finally:
        sink.close()
    deadline = time.monotonic() + 5
    while [m[1][0] for m in listening.messages if m[0] == "/piposer/frame"] != list(range(50)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    listening.close()


def test_many_people_are_split_into_bundles_that_fit_a_datagram():
    messages = [(f"/piposer/pose/{i}/left_wrist", (0.5, 0.5, 0.9)) for i in range(3000)]
    packed = bundles(messages)
    assert len(packed) > 1 and all(len(d) <= 60_000 for d in packed)
