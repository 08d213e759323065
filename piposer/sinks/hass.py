"""Home Assistant MQTT discovery: the retained config messages that make piposer one device with its entities.

Uses the long-standing per-entity config topics (`<discovery_prefix>/<component>/<node>/<object>/config`)
so it works with old and new Home Assistant releases alike. Every unique_id, object_id and topic holds the
node (the device id), so several piposers on one broker never collide. docs/mqtt.md lists the entities.
"""

from __future__ import annotations

import json
import platform
import re
import socket
from pathlib import Path

from .. import __version__
from .mqtt_settings import MqttSettings, MqttSetup

DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
COMMAND = '{{"command": "{}"}}'


def node_id(device_id: str) -> str:
    """The device id reduced to the characters Home Assistant allows in a discovery topic."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def hardware_model(path: Path = DEVICE_TREE_MODEL) -> str:
    """The board's name from the device tree ("Raspberry Pi 4 Model B Rev 1.4"), else the CPU architecture."""
    try:
        return path.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip() or platform.machine()
    except OSError:
        return platform.machine() or "unknown"


def console_url(bind: str, port: int, scheme: str = "http") -> str:
    """The web console's address as another machine on the network would type it: the bound address,
    or for "0.0.0.0" / "::" (every interface) the host's mDNS name (`<hostname>.local`)."""
    host = bind
    if host in ("0.0.0.0", "::"):
        name = socket.gethostname()
        host = name if "." in name else f"{name}.local"
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}/"


def discovery_configs(settings: MqttSettings, setup: MqttSetup) -> dict[str, dict]:
    """Discovery topic -> config payload for every entity and device trigger the config calls for."""
    base, node = settings.base_topic, node_id(settings.device)
    device = {
        "identifiers": [f"piposer_{node}"],
        "name": f"piposer {settings.device}",
        "manufacturer": "piposer",
        "model": hardware_model(),
        "sw_version": __version__,
        **({"suggested_area": settings.area} if settings.area else {}),
        **({"configuration_url": setup.configuration_url} if setup.configuration_url else {}),
    }
    online = {"topic": f"{base}/availability", "payload_available": "online", "payload_not_available": "offline"}
    detecting = {"topic": f"{base}/state",
                 "value_template": "{{ 'online' if value_json.get('status') == 'running' else 'offline' }}"}
    entities = _entities(base, settings, setup)
    configs = {}
    for (component, object_id), entity in entities.items():
        live = entity.pop("live", False)  # only meaningful while detection runs: unavailable when paused
        configs[f"{settings.discovery_prefix}/{component}/{node}/{object_id}/config"] = {
            **entity,
            "unique_id": f"piposer_{node}_{object_id}",
            "object_id": f"piposer_{node}_{object_id}",
            "has_entity_name": True,
            "availability": [online, detecting] if live else [online],
            "availability_mode": "all",
            "device": device,
            "origin": {"name": "piposer", "sw_version": __version__},
        }
    for object_id, trigger in _triggers(base, setup).items():
        configs[f"{settings.discovery_prefix}/device_automation/{node}/{object_id}/config"] = {
            "automation_type": "trigger",
            "topic": f"{base}/events",
            **trigger,
            "device": device,
            "origin": {"name": "piposer", "sw_version": __version__},
        }
    return configs


def _entities(base: str, settings: MqttSettings, setup: MqttSetup) -> dict[tuple[str, str], dict]:
    expire = {"expire_after": max(1, round(3 * setup.stats_interval))} if setup.stats_interval > 0 else {}
    controls = f"{base}/controls"
    entities = {
        ("binary_sensor", "presence"): {
            "name": "Presence", "device_class": "occupancy", "live": True, "state_topic": f"{base}/state",
            "value_template": "{{ 'ON' if value_json.presence else 'OFF' }}",
        },
        ("sensor", "people"): {
            "name": "People", "icon": "mdi:account-group", "state_class": "measurement", "live": True,
            "state_topic": f"{base}/state", "value_template": "{{ value_json.people }}",
        },
        ("switch", "detection"): {
            "name": "Detection", "icon": "mdi:motion-sensor", "state_topic": controls,
            "value_template": "{{ value_json.detection }}", "state_on": "on", "state_off": "off",
            "command_topic": f"{base}/set", "payload_on": COMMAND.format("resume"),
            "payload_off": COMMAND.format("pause"),
        },
        ("button", "snapshot"): {
            "name": "Snapshot", "icon": "mdi:camera", "command_topic": f"{base}/set",
            "payload_press": COMMAND.format("snapshot"),
        },
        ("button", "reload"): {
            "name": "Reload config", "icon": "mdi:reload", "entity_category": "config",
            "command_topic": f"{base}/set", "payload_press": COMMAND.format("reload"),
        },
    }
    for key, name in (("keypoint_threshold", "Keypoint threshold"), ("pose_threshold", "Pose threshold")):
        entities[("number", key)] = {
            "name": name, "icon": "mdi:tune", "entity_category": "config", "min": 0, "max": 1, "step": 0.01,
            "mode": "box", "state_topic": controls, "value_template": f"{{{{ value_json.{key} }}}}",
            "command_topic": f"{base}/set",
            "command_template": f'{{"command": "thresholds", "{key}": {{{{ value }}}}}}',
        }
    if settings.image:
        entities[("image", "snapshot")] = {
            "name": "Snapshot image", "image_topic": f"{base}/image", "content_type": "image/jpeg",
        }
    for zone in setup.zones:
        # .get: a state written before this zone existed (or after it went) must not be a template error
        picked = f"value_json.get({json.dumps(zone.name)}, 0)"
        entities[("binary_sensor", f"zone_{zone.name}")] = {
            "name": f"{zone.name} occupancy", "device_class": "occupancy", "live": True,
            "state_topic": f"{base}/zones", "value_template": f"{{{{ 'ON' if {picked} > 0 else 'OFF' }}}}",
        }
        entities[("sensor", f"zone_{zone.name}_people")] = {
            "name": f"{zone.name} people", "icon": "mdi:account-group", "state_class": "measurement", "live": True,
            "state_topic": f"{base}/zones", "value_template": f"{{{{ {picked} }}}}",
        }
    for rule in setup.rules:
        entities[("binary_sensor", f"rule_{rule}")] = {
            "name": f"Rule {rule}", "icon": "mdi:gesture", "live": True, "state_topic": f"{base}/rules",
            "value_template": f"{{{{ 'ON' if value_json.get({json.dumps(rule)}) else 'OFF' }}}}",
        }
    # event entities: each renders nothing (ignored by Home Assistant) for the other messages on `events`
    person = '"person": {{ value_json.get("person") | tojson }}'
    for rule in setup.rules:
        entities[("event", f"rule_{rule}_edge")] = {
            "name": f"Rule {rule} edge", "icon": "mdi:gesture", "state_topic": f"{base}/events",
            "event_types": ["rising", "falling"],
            "value_template": f"{{% if value_json.get('event') == 'rule' and value_json.get('rule') == {json.dumps(rule)} %}}"
                              f'{{"event_type": "{{{{ value_json.edge }}}}", {person}}}{{% endif %}}',
        }
    if setup.gestures:
        entities[("event", "pose")] = {
            "name": "Pose", "icon": "mdi:human-handsup", "state_topic": f"{base}/events",
            "event_types": list(setup.gestures),
            "value_template": f"{{% if value_json.get('event') == 'pose' and value_json.get('label') in "
                              f"{json.dumps(list(setup.gestures))} %}}"
                              f'{{"event_type": "{{{{ value_json.label }}}}", {person}}}{{% endif %}}',
        }
    stats = f"{base}/stats"
    for object_id, name, template, extra in (
        ("fps", "Frame rate", "value_json.fps", {"unit_of_measurement": "fps"}),
        ("inference", "Inference time", "value_json.inference_ms.p50",
         {"unit_of_measurement": "ms", "device_class": "duration"}),
        ("latency", "Latency", "value_json.latency_ms.p50", {"unit_of_measurement": "ms", "device_class": "duration"}),
        ("cpu_temperature", "CPU temperature", "value_json.cpu_temp_c",
         {"unit_of_measurement": "°C", "device_class": "temperature"}),
        ("dropped", "Dropped messages", "value_json.mqtt.queue_drops + value_json.mqtt.unsent",
         {"state_class": "total_increasing", "icon": "mdi:email-remove"}),
        ("uptime", "Uptime", "value_json.uptime_s", {"unit_of_measurement": "s", "device_class": "duration"}),
        ("memory", "Memory", "value_json.rss_mb",
         {"unit_of_measurement": "MiB", "device_class": "data_size", "icon": "mdi:memory"}),
    ):
        entities[("sensor", object_id)] = {
            "name": name, "entity_category": "diagnostic", "state_topic": stats,
            "value_template": f"{{{{ {template} }}}}", **({"state_class": "measurement"} | extra), **expire,
        }
    entities[("binary_sensor", "source")] = {
        "name": "Source", "device_class": "connectivity", "entity_category": "diagnostic", "state_topic": stats,
        "value_template": "{{ 'ON' if value_json.source.get('connected') else 'OFF' }}", **expire,
    }
    return entities


def _triggers(base: str, setup: MqttSetup) -> dict[str, dict]:
    """Device triggers on the `events` topic: a rule turning on or off, a taught pose being recognised."""
    triggers = {}
    rule_event = "{{ value_json.event }}:{{ value_json.get('rule') }}:{{ value_json.get('edge') }}"
    for rule in setup.rules:
        for edge, kind in (("rising", "turn_on"), ("falling", "turn_off")):
            triggers[f"rule_{rule}_{edge}"] = {
                "type": kind, "subtype": rule, "payload": f"rule:{rule}:{edge}", "value_template": rule_event,
            }
    for label in setup.gestures:
        triggers[f"pose_{label}"] = {
            "type": "pose", "subtype": label, "payload": f"pose:{label}",
            "value_template": "{{ value_json.event }}:{{ value_json.get('label') }}",
        }
    return triggers
