"""Home Assistant MQTT discovery: the retained config messages that make piposer appear as one device.

Uses the long-standing per-entity config topics (`<discovery_prefix>/<component>/<node>/<object>/config`)
so it works with old and new Home Assistant releases alike.
"""

from __future__ import annotations

import re

from .. import __version__


def node_id(device_id: str) -> str:
    """The device id reduced to the characters Home Assistant allows in a discovery topic."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def discovery_configs(
    discovery_prefix: str, base_topic: str, device_id: str, model_name: str, stats_interval: float, location: str = ""
) -> dict[str, dict]:
    """Discovery topic -> config payload for the presence binary_sensor and the people-count and fps sensors;
    `location` (a room) becomes the device's suggested area, so Home Assistant files it there."""
    node = node_id(device_id)
    common = {
        "availability_topic": f"{base_topic}/availability",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"piposer_{node}"],
            "name": f"piposer {device_id}",
            "manufacturer": "piposer",
            "model": model_name,
            "sw_version": __version__,
            **({"suggested_area": location} if location else {}),
        },
    }
    entities = {
        ("binary_sensor", "presence"): {
            "name": "Presence",
            "device_class": "occupancy",
            "state_topic": f"{base_topic}/state",
            "value_template": "{{ 'ON' if value_json.presence else 'OFF' }}",
        },
        ("sensor", "people"): {
            "name": "People",
            "icon": "mdi:account-group",
            "state_class": "measurement",
            "state_topic": f"{base_topic}/state",
            "value_template": "{{ value_json.people }}",
        },
        ("sensor", "fps"): {
            "name": "Frame rate",
            "unit_of_measurement": "fps",
            "state_class": "measurement",
            "entity_category": "diagnostic",
            "state_topic": f"{base_topic}/stats",
            "value_template": "{{ value_json.fps }}",
            # stats come every stats_interval: after three missed ones the value is stale
            **({"expire_after": max(1, round(3 * stats_interval))} if stats_interval > 0 else {}),
        },
    }
    return {
        f"{discovery_prefix}/{component}/{node}/{object_id}/config": {
            **entity,
            "unique_id": f"piposer_{node}_{object_id}",
            "has_entity_name": True,
            **common,
        }
        for (component, object_id), entity in entities.items()
    }
