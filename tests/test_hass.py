"""Home Assistant discovery against a real Mosquitto: the exact configs, the state topics the entities read,
stale entities removed, two devices side by side, the snapshot picture. (tests/test_hass_real.py runs a real
Home Assistant on the same payloads.)"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from broker import Broker, Sinks, Subscriber

from piposer import __version__
from piposer.commands import Snapshot, parse_command
from piposer.events import Event, EventKind
from piposer.rules.settings import Condition, RuleSettings, Zone
from piposer.rules.zones import ZoneCounts, named_zones
from piposer.sinks.hass import console_url, hardware_model
from piposer.sinks.mqtt import MqttSink
from piposer.sinks.mqtt_settings import MqttSetup
from piposer.types import COCO17, Frame, make_pose

IMAGE = np.zeros((480, 640, 3), np.uint8)
RULES = [
    RuleSettings(name="door", when=Condition(zone=Zone(keypoint="nose", rect=[0.0, 0.0, 0.5, 1.0]))),
    RuleSettings(name="wave", when=Condition(all=[Condition(people=1), Condition(zone=Zone(rect=[0.5, 0, 1, 1])),
                                                  Condition(zone=Zone(polygon=[[0, 0], [1, 0], [0, 1]]))])),
]


def setup_for(rules, **extra) -> MqttSetup:
    return MqttSetup(zones=tuple(named_zones(rules)), rules=tuple(r.name for r in rules), **extra)


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "broker") as broker:
        yield broker


@pytest.fixture
def make_sink(broker):
    sinks = Sinks()

    def make(device: str = "hall", setup: MqttSetup | None = None, **overrides) -> MqttSink:
        return sinks.make(broker, setup or setup_for(RULES), device_id=device, **overrides)

    yield make
    sinks.close()


def person(x: float = 100.0):
    """A standing person whose nose is at (x, 50) in a 640x480 frame."""
    xy = np.column_stack([np.linspace(x, x + 100, 17), np.linspace(50, 400, 17)])
    return make_pose(COCO17, xy, np.full(17, 0.8), (640, 480), 0.3, 0.7)


def frame(index: int, image=IMAGE) -> Frame:
    return Frame(image, index, time.monotonic(), 1_700_000_000.0 + index)


def configs(sub: Subscriber, device: str = "hall") -> dict[str, dict | None]:
    """The latest discovery config of every topic of `device` (None where it was emptied)."""
    latest = {}
    for m in list(sub.messages):
        if m.topic.startswith("homeassistant/") and m.topic.split("/")[2] == device:
            latest[m.topic] = m.json() if m.payload else None
    return latest


DEVICE = {
    "identifiers": ["piposer_hall"], "name": "piposer hall", "manufacturer": "piposer", "model": hardware_model(),
    "sw_version": __version__, "suggested_area": "Hall", "configuration_url": "http://hall.local:8080/",
}
ORIGIN = {"name": "piposer", "sw_version": __version__}
ONLINE = {"topic": "piposer/hall/availability", "payload_available": "online", "payload_not_available": "offline"}
RUNNING = {"topic": "piposer/hall/state",
           "value_template": "{{ 'online' if value_json.get('status') == 'running' else 'offline' }}"}


def entity(object_id: str, live: bool = False, **config) -> dict:
    return {**config, "unique_id": f"piposer_hall_{object_id}", "object_id": f"piposer_hall_{object_id}",
            "has_entity_name": True, "availability": [ONLINE, RUNNING] if live else [ONLINE],
            "availability_mode": "all", "device": DEVICE, "origin": ORIGIN}


def test_discovery_configs_are_exact(broker, make_sink):
    setup = setup_for(RULES, gestures=("arms_up",), configuration_url="http://hall.local:8080/")
    with Subscriber(broker, "homeassistant/#") as sub:
        make_sink(setup=setup, area="Hall")
        sub.wait_for("homeassistant/device_automation/hall/pose_arms_up/config")
        time.sleep(0.2)
        got = configs(sub)
    p = "homeassistant"
    assert sorted(got) == sorted([
        f"{p}/binary_sensor/hall/presence/config", f"{p}/sensor/hall/people/config",
        f"{p}/switch/hall/detection/config", f"{p}/button/hall/snapshot/config", f"{p}/button/hall/reload/config",
        f"{p}/number/hall/keypoint_threshold/config", f"{p}/number/hall/pose_threshold/config",
        f"{p}/image/hall/snapshot/config",
        f"{p}/binary_sensor/hall/zone_door/config", f"{p}/sensor/hall/zone_door_people/config",
        f"{p}/binary_sensor/hall/zone_wave_1/config", f"{p}/sensor/hall/zone_wave_1_people/config",
        f"{p}/binary_sensor/hall/zone_wave_2/config", f"{p}/sensor/hall/zone_wave_2_people/config",
        f"{p}/binary_sensor/hall/rule_door/config", f"{p}/binary_sensor/hall/rule_wave/config",
        f"{p}/event/hall/rule_door_edge/config", f"{p}/event/hall/rule_wave_edge/config", f"{p}/event/hall/pose/config",
        *(f"{p}/sensor/hall/{name}/config" for name in
          ("fps", "inference", "latency", "cpu_temperature", "dropped", "uptime", "memory")),
        f"{p}/binary_sensor/hall/source/config",
        *(f"{p}/device_automation/hall/rule_{r}_{e}/config" for r in ("door", "wave") for e in ("rising", "falling")),
        f"{p}/device_automation/hall/pose_arms_up/config",
    ])
    assert got[f"{p}/binary_sensor/hall/presence/config"] == entity(
        "presence", live=True, name="Presence", device_class="occupancy", state_topic="piposer/hall/state",
        value_template="{{ 'ON' if value_json.presence else 'OFF' }}")
    assert got[f"{p}/switch/hall/detection/config"] == entity(
        "detection", name="Detection", icon="mdi:motion-sensor", state_topic="piposer/hall/controls",
        value_template="{{ value_json.detection }}", state_on="on", state_off="off",
        command_topic="piposer/hall/set", payload_on='{"command": "resume"}', payload_off='{"command": "pause"}')
    assert got[f"{p}/button/hall/snapshot/config"] == entity(
        "snapshot", name="Snapshot", icon="mdi:camera", command_topic="piposer/hall/set",
        payload_press='{"command": "snapshot"}')
    assert got[f"{p}/number/hall/keypoint_threshold/config"] == entity(
        "keypoint_threshold", name="Keypoint threshold", icon="mdi:tune", entity_category="config", min=0, max=1,
        step=0.01, mode="box", state_topic="piposer/hall/controls", value_template="{{ value_json.keypoint_threshold }}",
        command_topic="piposer/hall/set",
        command_template='{"command": "thresholds", "keypoint_threshold": {{ value }}}')
    assert got[f"{p}/image/hall/snapshot/config"] == entity(
        "snapshot", name="Snapshot image", image_topic="piposer/hall/image", content_type="image/jpeg")
    assert got[f"{p}/binary_sensor/hall/zone_wave_2/config"] == entity(
        "zone_wave_2", live=True, name="wave_2 occupancy", device_class="occupancy", state_topic="piposer/hall/zones",
        value_template="{{ 'ON' if value_json.get(\"wave_2\", 0) > 0 else 'OFF' }}")
    assert got[f"{p}/sensor/hall/zone_door_people/config"] == entity(
        "zone_door_people", live=True, name="door people", icon="mdi:account-group", state_class="measurement",
        state_topic="piposer/hall/zones", value_template="{{ value_json.get(\"door\", 0) }}")
    assert got[f"{p}/binary_sensor/hall/rule_wave/config"] == entity(
        "rule_wave", live=True, name="Rule wave", icon="mdi:gesture", state_topic="piposer/hall/rules",
        value_template="{{ 'ON' if value_json.get(\"wave\") else 'OFF' }}")
    assert got[f"{p}/event/hall/rule_door_edge/config"] == entity(
        "rule_door_edge", name="Rule door edge", icon="mdi:gesture", state_topic="piposer/hall/events",
        event_types=["rising", "falling"],
        value_template="{% if value_json.get('event') == 'rule' and value_json.get('rule') == \"door\" %}"
                       '{"event_type": "{{ value_json.edge }}", "person": {{ value_json.get("person") | tojson }}}'
                       "{% endif %}")
    assert got[f"{p}/event/hall/pose/config"]["event_types"] == ["arms_up"]
    assert got[f"{p}/sensor/hall/cpu_temperature/config"] == entity(
        "cpu_temperature", name="CPU temperature", entity_category="diagnostic", state_topic="piposer/hall/stats",
        value_template="{{ value_json.cpu_temp_c }}", state_class="measurement", unit_of_measurement="°C",
        device_class="temperature", expire_after=30)
    assert got[f"{p}/binary_sensor/hall/source/config"] == entity(
        "source", name="Source", device_class="connectivity", entity_category="diagnostic",
        state_topic="piposer/hall/stats", value_template="{{ 'ON' if value_json.source.get('connected') else 'OFF' }}",
        expire_after=30)
    assert got[f"{p}/device_automation/hall/rule_door_falling/config"] == {
        "automation_type": "trigger", "topic": "piposer/hall/events", "type": "turn_off", "subtype": "door",
        "payload": "rule:door:falling",
        "value_template": "{{ value_json.event }}:{{ value_json.get('rule') }}:{{ value_json.get('edge') }}",
        "device": DEVICE, "origin": ORIGIN,
    }
    assert got[f"{p}/device_automation/hall/pose_arms_up/config"]["payload"] == "pose:arms_up"
    # every command an entity sends is one the `set` parser accepts
    for config in got.values():
        for key in ("payload_on", "payload_off", "payload_press"):
            if key in config:
                parse_command(config[key])
        if "command_template" in config:
            parse_command(config["command_template"].replace("{{ value }}", "0.45"))


def test_state_topics_follow_frames_rules_pause_and_thresholds(broker, make_sink):
    with Subscriber(broker, "piposer/hall/#") as sub:
        sink = make_sink()
        starting = sub.wait_for("piposer/hall/state")[0].json()
        assert starting["status"] == "starting" and starting["people"] == 0  # the last run's state is replaced
        assert sub.wait_for("piposer/hall/controls")[0].json() == {
            "detection": "on", "keypoint_threshold": 0.3, "pose_threshold": 0.3}
        assert sub.wait_for("piposer/hall/rules")[0].json() == {"door": False, "wave": False}
        assert sub.wait_for("piposer/hall/zones")[0].json() == {"door": 0, "wave_1": 0, "wave_2": 0}

        left, right = person(x=100), person(x=500)  # noses at x = 0.16 and 0.78 of the width, y = 0.1
        sink.publish(frame(0), [left, right])
        zones = sub.wait_for("piposer/hall/zones", 2)[-1].json()
        assert zones == {"door": 1, "wave_1": 1, "wave_2": 2}
        sink.on_event(Event(EventKind.RULE, {"rule": "wave", "edge": "rising", "person": 3}))
        sink.on_event(Event(EventKind.RULE, {"rule": "wave", "edge": "rising", "person": 4}))
        sink.on_event(Event(EventKind.RULE, {"rule": "wave", "edge": "falling", "person": 3}))
        sink.on_event(Event(EventKind.THRESHOLDS, {"keypoint_threshold": 0.5, "pose_threshold": 0.2}))
        assert sub.wait_for("piposer/hall/rules", 2)[-1].json() == {"door": False, "wave": True}  # person 4 still
        assert sub.wait_for("piposer/hall/controls", 2)[-1].json() == {
            "detection": "on", "keypoint_threshold": 0.5, "pose_threshold": 0.2}

        sink.pause("paused")
        paused = sub.wait_for("piposer/hall/state", where=lambda m: m.json()["status"] == "paused")[0].json()
        assert paused["people"] == 0 and paused["presence"] is False
        assert sub.wait_for("piposer/hall/controls", 3)[-1].json()["detection"] == "off"
        assert sub.wait_for("piposer/hall/zones", 3)[-1].json() == {"door": 0, "wave_1": 0, "wave_2": 0}
        sink.publish(frame(1), [left])  # a frame while paused (for a picture) changes no state
        sink.resume()
        assert sub.wait_for("piposer/hall/controls", 4)[-1].json()["detection"] == "on"
        time.sleep(0.2)
        assert sub.on("piposer/hall/state")[-1].json()["status"] == "paused"  # until the next frame
        sink.publish(frame(2), [left])
        state = sub.wait_for("piposer/hall/state", 2, where=lambda m: m.json()["status"] == "running")[-1].json()
        assert state == {"people": 1, "presence": True, "since": 1_700_000_002.0, "status": "running"}
    with Subscriber(broker, "piposer/hall/+") as late:  # all retained for Home Assistant (re)starting
        assert late.wait_for("piposer/hall/zones")[0].retain
        assert late.wait_for("piposer/hall/rules")[0].json() == {"door": False, "wave": True}


def test_a_deleted_or_renamed_zone_or_rule_is_removed_from_home_assistant(broker, make_sink):
    """In place (a reload) and across a restart: the retained `discovery` list says what was announced."""
    with Subscriber(broker, "homeassistant/#", "piposer/hall/discovery") as sub:
        sink = make_sink()
        sub.wait_for("homeassistant/binary_sensor/hall/rule_door/config")
        renamed = [RuleSettings(name="entry", when=RULES[0].when), RULES[1]]
        sink.reconfigure((sink.settings, setup_for(renamed)))
        sub.wait_for("homeassistant/binary_sensor/hall/rule_door/config", 2)
        time.sleep(0.2)
        got = configs(sub)
        assert got["homeassistant/binary_sensor/hall/rule_door/config"] is None
        assert got["homeassistant/binary_sensor/hall/zone_door/config"] is None
        assert got["homeassistant/sensor/hall/zone_door_people/config"] is None
        assert got["homeassistant/device_automation/hall/rule_door_rising/config"] is None
        assert got["homeassistant/binary_sensor/hall/zone_entry/config"]["name"] == "entry occupancy"
        sink.close()

        make_sink(setup=setup_for([]))  # a new run without any rules
        sub.wait_for("homeassistant/binary_sensor/hall/rule_wave/config", 2)
        time.sleep(0.3)
        got = configs(sub)
    gone = sorted(t for t, c in got.items() if c is None)
    assert [t for t in gone if "wave" in t or "entry" in t] == sorted(
        f"homeassistant/{kind}/hall/{name}/config" for kind, name in [
            ("binary_sensor", "rule_wave"), ("binary_sensor", "rule_entry"),
            ("event", "rule_wave_edge"), ("event", "rule_entry_edge"),
            *((c, f"zone_{z}{s}") for z in ("wave_1", "wave_2", "entry") for c, s in
              (("binary_sensor", ""), ("sensor", "_people"))),
            *(("device_automation", f"rule_{r}_{e}") for r in ("wave", "entry") for e in ("rising", "falling")),
        ])
    assert got["homeassistant/binary_sensor/hall/presence/config"]["name"] == "Presence"  # the rest stays


def test_two_devices_on_one_broker_never_collide(broker, make_sink):
    with Subscriber(broker, "homeassistant/#") as sub:
        make_sink("hall")
        make_sink("kitchen")
        sub.wait_for("homeassistant/sensor/kitchen/memory/config")
        sub.wait_for("homeassistant/sensor/hall/memory/config")
        time.sleep(0.2)
        hall, kitchen = configs(sub, "hall"), configs(sub, "kitchen")
    assert len(hall) == len(kitchen) == 30
    assert {t.replace("/hall/", "/kitchen/") for t in hall} == set(kitchen)
    for key in ("unique_id", "object_id", "state_topic", "command_topic"):
        ours = {c[key] for c in hall.values() if key in c}
        theirs = {c[key] for c in kitchen.values() if key in c}
        assert ours and not ours & theirs, key
    assert {c["device"]["identifiers"][0] for c in kitchen.values()} == {"piposer_kitchen"}


def test_snapshot_picture_on_arrival_on_command_and_at_the_interval(broker, make_sink):
    """Never every frame: arrival, the `snapshot` command and every image_interval; scaled to image_width."""
    big = np.full((960, 1280, 3), 90, np.uint8)
    clock = [100.0]
    with Subscriber(broker, "piposer/hall/image") as sub:
        sink = make_sink(setup=setup_for([]), image_interval=60.0, image_width=320)
        sink.clock = lambda: clock[0]
        sink.publish(frame(0, big), [])  # first frame: the interval's first picture
        first = sub.wait_for("piposer/hall/image")[0]
        for i in range(1, 20):  # nobody arrives, the interval has not passed: nothing
            clock[0] += 0.1
            sink.publish(frame(i, big), [])
        time.sleep(0.3)
        assert len(sub.on("piposer/hall/image")) == 1
        sink.publish(frame(20, big), [person(x=400)])  # arrival
        sub.wait_for("piposer/hall/image", 2)
        for i in range(21, 40):  # still there: nothing more
            sink.publish(frame(i, big), [person(x=400)])
        sink.on_command(Snapshot())
        assert sink.wants_frame
        sink.publish(frame(40, big), [person(x=400)])
        sub.wait_for("piposer/hall/image", 3)
        clock[0] += 61
        sink.publish(frame(41, big), [person(x=400)])
        pictures = sub.wait_for("piposer/hall/image", 4)
        time.sleep(0.3)
        assert len(sub.on("piposer/hall/image")) == 4
    with Subscriber(broker, "piposer/hall/image") as late:  # retained: a restarted Home Assistant has it
        assert late.wait_for("piposer/hall/image")[0].payload == pictures[-1].payload
    assert first.payload[:2] == b"\xff\xd8"  # JPEG
    image = cv2.imdecode(np.frombuffer(pictures[-1].payload, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    assert abs(int(image[200, 20, 1]) - 90) < 8  # the frame itself, scaled
    assert image.reshape(-1, 3).max(axis=0)[1] > 200  # and the skeleton drawn on it (bright lines)


def test_the_picture_is_encoded_off_the_frame_loop(broker, make_sink):
    sink = make_sink(setup=setup_for([]), image_interval=0.0)
    threads = []
    deliver = sink._pictures.deliver
    sink._pictures.deliver = lambda jpeg: (threads.append(threading.current_thread().name), deliver(jpeg))
    sink.on_command(Snapshot())
    started = time.perf_counter()
    sink.publish(frame(0, np.zeros((1080, 1920, 3), np.uint8)), [person()])
    spent = time.perf_counter() - started
    deadline = time.monotonic() + 5
    while not threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads == ["piposer-picture"]
    assert spent < 0.05  # a copy of the frame, not a draw-scale-encode (about 30 ms at 1080p)


def test_zone_counts_use_the_rules_own_test_and_are_debounced():
    zones = named_zones([RuleSettings(name="door", min_score=0.5, when=Condition(zone=Zone(
        keypoint="nose", polygon=[[0, 0], [0.5, 0], [0.5, 1], [0, 1]])))])
    counts = ZoneCounts(zones, hold=1.0)
    weak = person(x=100)
    weak.keypoints[0].score = 0.4
    assert counts.update([person(x=100), person(x=500)], 0.0) == {"door": 1}  # only the left nose is inside
    assert counts.update([person(x=100), person(x=100)], 0.1) == {"door": 1}  # a change must hold for 1 s
    assert counts.update([person(x=100), person(x=100)], 1.2) == {"door": 2}
    assert counts.update([person(x=100), weak], 1.3) == {"door": 2}  # below the rule's min_score: not in
    assert counts.update([person(x=100), weak], 2.4) == {"door": 1}


def test_hardware_model_and_console_url(tmp_path, monkeypatch):
    tree = tmp_path / "model"
    tree.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    assert hardware_model(tree) == "Raspberry Pi 4 Model B Rev 1.4"
    assert hardware_model(tmp_path / "none") != ""
    monkeypatch.setattr("socket.gethostname", lambda: "hall")
    assert console_url("0.0.0.0", 8080) == "http://hall.local:8080/"
    assert console_url("192.168.1.20", 9000) == "http://192.168.1.20:9000/"
    assert console_url("::", 8443, "https") == "https://hall.local:8443/"


def test_a_forged_discovery_list_empties_nothing_of_another_device(broker, make_sink):
    with Subscriber(broker, "homeassistant/#") as sub:
        make_sink("kitchen")
        sub.wait_for("homeassistant/sensor/kitchen/people/config")
        sub.publish("piposer/hall/discovery", '["homeassistant/sensor/kitchen/people/config", 7, "x"]', retain=True)
        make_sink("hall")
        sub.wait_for("homeassistant/sensor/hall/people/config")
        sub.publish("piposer/hall/discovery", '{"not": "a list"}')
        time.sleep(0.3)
        assert configs(sub, "kitchen")["homeassistant/sensor/kitchen/people/config"]["name"] == "People"
        assert all(c is not None for c in configs(sub, "hall").values())
