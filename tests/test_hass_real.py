"""piposer in a real Home Assistant (core 2025.4, its own Python 3.13 venv from `make test-hass`): `piposer run`
on the sample video publishes to a test broker, Home Assistant's MQTT integration (set up through its config
flow) discovers the device, and everything is checked through Home Assistant's REST and websocket APIs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from broker import Broker, Subscriber
from conftest import DATA, ROOT
from hass_core import READY_MARK, VENV, HomeAssistant

pytestmark = pytest.mark.skipif(
    not READY_MARK.exists(), reason=f"no Home Assistant venv at {VENV}: `make test` or `make test-hass` builds it (about 12 min)")

VIDEO = DATA / "video" / "room_pair.mp4"
# what this bare core install logs whatever it is fed: no pip, no zlib-ng, no libturbojpeg
UNRELATED = r"Skipping pip installation|aiohttp_fast_zlib|libturbojpeg"
ROOM = '{ zone = { keypoint = "nose", rect = [0.0, 0.0, 1.0, 1.0] } }'
CEILING = '{ zone = { keypoint = "nose", rect = [0.0, 0.0, 0.01, 0.01] } }'


def write_config(path, broker: Broker, snaps, rules: dict[str, str]) -> None:
    rule_tables = "".join(f'[[rules]]\nname = "{name}"\nwhen = {when}\n' for name, when in rules.items())
    path.write_text(f"""
[source]
source = "{VIDEO}"
loop = true
[loop]
max_fps = 5
stats_interval = 2
snapshot_dir = "{snaps}"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
device_id = "hass"
area = "Living room"
image_interval = 0
{rule_tables}""")


def start_piposer(config) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "piposer", "run", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_piposer_is_a_device_in_a_real_home_assistant(tmp_path):
    config, snaps = tmp_path / "piposer.toml", tmp_path / "snaps"
    with Broker(tmp_path / "broker") as broker, Subscriber(broker, "piposer/hass/#") as sub:
        write_config(config, broker, snaps, {"room": ROOM, "ceiling": CEILING})
        hass = HomeAssistant(tmp_path / "hass", broker.port).start()
        piposer = start_piposer(config)
        try:
            # the entities, their device classes and states
            presence = hass.wait_state("binary_sensor.piposer_hass_presence", "on", timeout=60)
            assert presence["attributes"]["device_class"] == "occupancy"
            assert hass.wait_state("binary_sensor.piposer_hass_zone_room", "on")["attributes"]["device_class"] == "occupancy"
            assert hass.wait_state("binary_sensor.piposer_hass_zone_ceiling", "off")
            assert int(hass.wait_state("sensor.piposer_hass_zone_room_people", "2")["state"]) == 2
            assert hass.wait_state("binary_sensor.piposer_hass_rule_room", "on")
            source = hass.wait_state("binary_sensor.piposer_hass_source", "on")
            assert source["attributes"]["device_class"] == "connectivity"
            fps = hass.state("sensor.piposer_hass_fps")
            deadline = time.monotonic() + 20
            while fps["state"] in ("unknown", "unavailable", "0.0") and time.monotonic() < deadline:
                time.sleep(0.5)
                fps = hass.state("sensor.piposer_hass_fps")
            assert 1.0 < float(fps["state"]) <= 6.0 and fps["attributes"]["unit_of_measurement"] == "fps"
            assert hass.state("sensor.piposer_hass_cpu_temperature")["attributes"]["device_class"] == "temperature"

            # the device, its diagnostics and its triggers, as the automation editor lists them
            devices, entities = hass.ws({"type": "config/device_registry/list"},
                                        {"type": "config/entity_registry/list"})
            (device,) = [d for d in devices if ["mqtt", "piposer_hass"] in d["identifiers"]]
            assert device["name"] == "piposer hass" and device["manufacturer"] == "piposer"
            assert device["area_id"] == "living_room" and device["sw_version"]
            categories = {e["entity_id"]: e["entity_category"] for e in entities if e["device_id"] == device["id"]}
            assert categories["sensor.piposer_hass_inference"] == "diagnostic"
            assert categories["binary_sensor.piposer_hass_source"] == "diagnostic"
            assert categories["number.piposer_hass_keypoint_threshold"] == "config"
            (triggers,) = hass.ws({"type": "device_automation/trigger/list", "device_id": device["id"]})
            assert {(t["type"], t["subtype"]) for t in triggers if t["domain"] == "mqtt"} == {
                ("turn_on", "room"), ("turn_off", "room"), ("turn_on", "ceiling"), ("turn_off", "ceiling")}

            # a number goes through `set` validation and its state comes back from piposer
            hass.call("number", "set_value", entity_id="number.piposer_hass_keypoint_threshold", value=0.45)
            hass.wait_state("number.piposer_hass_keypoint_threshold", "0.45")

            # the switch pauses piposer; presence is then unavailable, not "nobody here"
            edge_before = hass.state("event.piposer_hass_rule_room_edge")["state"]
            hass.call("switch", "turn_off", entity_id="switch.piposer_hass_detection")
            sub.wait_for("piposer/hass/events", where=lambda m: m.json()["event"] == "paused", timeout=10)
            hass.wait_state("switch.piposer_hass_detection", "off")
            hass.wait_state("binary_sensor.piposer_hass_presence", "unavailable")
            hass.wait_state("sensor.piposer_hass_zone_room_people", "unavailable")
            hass.call("switch", "turn_on", entity_id="switch.piposer_hass_detection")
            hass.wait_state("switch.piposer_hass_detection", "on")
            hass.wait_state("binary_sensor.piposer_hass_presence", "on")
            # the rule fell with the pause and rose again: the event entity saw both, and nothing else
            edge = hass.state("event.piposer_hass_rule_room_edge")
            deadline = time.monotonic() + 20
            while (edge["state"] == edge_before or edge["attributes"]["event_type"] != "rising") \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
                edge = hass.state("event.piposer_hass_rule_room_edge")
            assert edge["attributes"]["event_type"] == "rising" and edge["attributes"]["person"] is None
            assert edge["attributes"]["event_types"] == ["rising", "falling"]
            assert hass.state("event.piposer_hass_rule_ceiling_edge")["state"] == "unknown"  # never fired

            # the button takes a snapshot; the image entity shows an annotated picture
            before = hass.state("image.piposer_hass_snapshot")["state"]
            hass.call("button", "press", entity_id="button.piposer_hass_snapshot")
            sub.wait_for("piposer/hass/events", where=lambda m: m.json()["event"] == "snapshot", timeout=10)
            assert len(list(snaps.glob("*.jpg"))) == 1
            image = hass.state("image.piposer_hass_snapshot")
            deadline = time.monotonic() + 10
            while image["state"] == before and time.monotonic() < deadline:
                time.sleep(0.2)
                image = hass.state("image.piposer_hass_snapshot")
            assert image["state"] != before
            jpeg = hass.request("GET", f"/api/image_proxy/image.piposer_hass_snapshot", raw=True)
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert picture.shape[1] == 640

            # a deleted zone and rule disappear on reload, and nothing goes unavailable meanwhile
            write_config(config, broker, snaps, {"room": ROOM})
            hass.call("button", "press", entity_id="button.piposer_hass_reload")
            deadline = time.monotonic() + 20
            seen = set()
            while hass.state("binary_sensor.piposer_hass_zone_ceiling") is not None:
                seen.add(hass.state("binary_sensor.piposer_hass_presence")["state"])
                assert time.monotonic() < deadline, "the deleted zone's entity is still there"
                time.sleep(0.1)
            assert hass.state("binary_sensor.piposer_hass_rule_ceiling") is None
            assert hass.state("sensor.piposer_hass_zone_ceiling_people") is None
            assert hass.state("event.piposer_hass_rule_ceiling_edge") is None
            assert seen <= {"on"}
            assert hass.state("binary_sensor.piposer_hass_zone_room")["state"] == "on"

            # availability follows SIGTERM and a restart
            piposer.send_signal(signal.SIGTERM)
            assert piposer.wait(20) == 0
            hass.wait_state("binary_sensor.piposer_hass_presence", "unavailable")
            hass.wait_state("switch.piposer_hass_detection", "unavailable")
            piposer = start_piposer(config)
            hass.wait_state("binary_sensor.piposer_hass_presence", "on", timeout=60)
        finally:
            piposer.kill()
            piposer.wait()
            hass.stop()
    log = hass.log()
    assert "homeassistant.bootstrap" in log  # the log is the one this Home Assistant wrote
    complaints = [line for line in log.splitlines()
                  if re.search(r"\b(WARNING|ERROR)\b", line) and not re.search(UNRELATED, line)]
    assert complaints == []
