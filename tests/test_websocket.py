"""The WebSocket pose stream with a real aiohttp client, on a real run over the sample video whose poses
also go to a real Mosquitto broker: what the browser gets is what MQTT says, in piposer's shape and ml5's."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import aiohttp
import pytest

from broker import Broker, Subscriber
from piposer.errors import OutputError
from piposer.runtime.controller import App
from piposer.sinks.mqtt import MqttSettings
from piposer.sinks.web_settings import WebSettings
from piposer.sinks.websocket import WebSlice, WebSocketSink
from test_app import make_config

FRAMES = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Watcher:
    """A WebSocket client in a thread of its own, keeping every message it receives."""

    def __init__(self, url: str, headers: dict | None = None):
        self.url, self.headers = url, headers or {}
        self.messages: list = []
        self.error: Exception | None = None
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)
        self.thread.start()

    async def _watch(self):
        try:
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(self.url, headers=self.headers) as ws:
                    self.connected.set()
                    while not self.stop.is_set():
                        try:
                            message = await ws.receive(timeout=0.1)
                        except asyncio.TimeoutError:
                            continue
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        self.messages.append(json.loads(message.data))
        except Exception as exc:  # the test looks at it
            self.error = exc
            self.connected.set()

    def close(self) -> list:
        self.stop.set()
        self.thread.join(10)
        return self.messages


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """20 frames of room_pair.mp4, tracked: poses to MQTT and to two browsers (piposer and ml5 shapes)."""
    with Broker(tmp_path_factory.mktemp("broker")) as mosquitto:
        port = free_port()
        cfg = make_config(mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, device_id="ws",
                                            discovery=False, qos=1))
        cfg.web = WebSettings(enabled=True, port=port)
        with Subscriber(mosquitto, "piposer/ws/poses") as sub:
            with App(cfg, log=lambda line: None) as app:
                own = Watcher(f"ws://127.0.0.1:{port}/poses")
                ml5 = Watcher(f"ws://127.0.0.1:{port}/poses?format=ml5")
                assert own.connected.wait(5) and ml5.connected.wait(5) and not (own.error or ml5.error)
                sink = next(s for s in app.sinks.sinks if s.name == "WebSocketSink")
                deadline = time.monotonic() + 5
                while len(sink.clients) < 2:
                    assert time.monotonic() < deadline
                    time.sleep(0.01)
                for _ in range(FRAMES):  # one frame at a time, so no client skips one
                    before = (len(own.messages), len(ml5.messages))
                    app.run(max_frames=app.stats.frames + 1)
                    while (len(own.messages), len(ml5.messages)) == before:
                        assert time.monotonic() < deadline + 30
                        time.sleep(0.002)
            mqtt = [m.json() for m in sub.wait_for("piposer/ws/poses", FRAMES)]
        yield mqtt, own.close(), ml5.close()


def test_the_piposer_stream_is_the_mqtt_payload(recorded):
    mqtt, own, _ = recorded
    assert len(own) == FRAMES and [m["frame"] for m in own] == [m["frame"] for m in mqtt]
    assert own == mqtt  # the same payload, byte for byte after parsing
    assert all(pose["id"] >= 1 for message in own for pose in message["poses"]) and own[0]["poses"]


def test_the_ml5_stream_has_ml5_posenet_shape(recorded):
    mqtt, _, ml5 = recorded
    assert len(ml5) == FRAMES
    for payload, people in zip(mqtt, ml5):
        assert [p["id"] for p in people] == [p["id"] for p in payload["poses"]]
        for person, pose in zip(people, payload["poses"]):
            keypoints = person["pose"]["keypoints"]
            assert [k["part"] for k in keypoints] == list(pose["keypoints"])
            for k in keypoints:
                ours = pose["keypoints"][k["part"]]
                assert (k["position"]["x"], k["position"]["y"]) == pytest.approx((ours["x"], ours["y"]), abs=0.051)
                assert person["pose"][k["part"]] == {"x": k["position"]["x"], "y": k["position"]["y"],
                                                     "confidence": k["score"]}
            assert person["pose"]["score"] == pytest.approx(pose["score"], abs=1e-3)
            for a, b in person["skeleton"]:
                assert a in keypoints and b in keypoints and min(a["score"], b["score"]) >= 0.3


def test_origins_and_formats_are_checked():
    port = free_port()
    sink = WebSocketSink(WebSlice(WebSettings(enabled=True, port=port, allow_origins=["http://laptop.local:8000"])),
                         log=lambda line: None)
    try:
        refused = Watcher(f"ws://127.0.0.1:{port}/poses", {"Origin": "http://evil.example"})
        allowed = Watcher(f"ws://127.0.0.1:{port}/poses", {"Origin": "http://laptop.local:8000"})
        unknown = Watcher(f"ws://127.0.0.1:{port}/poses?format=csv")
        for watcher in (refused, allowed, unknown):
            assert watcher.connected.wait(5)
        assert isinstance(refused.error, aiohttp.WSServerHandshakeError) and refused.error.status == 403
        assert allowed.error is None
        assert isinstance(unknown.error, aiohttp.WSServerHandshakeError) and unknown.error.status == 400
        allowed.close()
    finally:
        sink.close()


def test_a_port_in_use_is_one_line_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OutputError, match=f"web: cannot listen on 127.0.0.1:{port}: "):
            WebSocketSink(WebSlice(WebSettings(enabled=True, port=port)), log=lambda line: None)


def own_address() -> str | None:
    """This machine's address on its network (not loopback), as another machine would reach it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, the kernel only picks a route
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("trusted", [False, True])
def test_other_machines_need_a_login_or_a_trusted_network(trusted):
    address = own_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    port = free_port()
    sink = WebSocketSink(WebSlice(WebSettings(enabled=True, bind="0.0.0.0", port=port, trusted_network=trusted)),
                         log=lambda line: None)
    try:
        watcher = Watcher(f"ws://{address}:{port}/poses")
        assert watcher.connected.wait(5)
        if trusted:
            assert watcher.error is None
        else:
            assert isinstance(watcher.error, aiohttp.WSServerHandshakeError) and watcher.error.status == 401
        watcher.close()
    finally:
        sink.close()
