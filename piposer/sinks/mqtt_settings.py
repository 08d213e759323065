"""[mqtt] settings: broker, topics, credentials, discovery; light to import (no paho)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import PiposerError


@dataclass
class MqttSettings:
    """[mqtt]: which broker, which topics, how often, and how to authenticate.

    The password may come from `password`, from the first line of `password_file`, or from the
    environment variable named by `password_env`, so it need not sit in the config file.
    """

    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    prefix: str = "piposer"
    device_id: str = ""  # empty: the hostname
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    password_env: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive: int = 30
    qos: Literal[0, 1, 2] = 0
    max_rate_hz: float = 0.0  # 0: every processed frame
    only_on_change: bool = False
    change_threshold: float = 0.01
    queue_size: int = 100
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    reconnect_min_delay: float = 1.0
    reconnect_max_delay: float = 60.0
    area: str = ""  # Home Assistant's suggested area for the device, e.g. "Living room"
    image: bool = True  # publish an annotated snapshot on `image` (JPEG) for Home Assistant's image entity
    image_interval: float = 300.0  # seconds between pictures besides arrivals and commands (0: none)
    image_width: int = 640

    def __post_init__(self):
        from ..checks import check_range

        check_range("mqtt.port", self.port, 1, 65535)
        for key in ("prefix", "discovery_prefix"):
            _check_topic_part(f"mqtt.{key}", getattr(self, key), slashes=True)
        if self.device_id:
            _check_topic_part("mqtt.device_id", self.device_id, slashes=False)
        sources = [k for k in ("password", "password_file", "password_env") if getattr(self, k)]
        if len(sources) > 1:
            raise ValueError(f"mqtt.{sources[0]} and mqtt.{sources[1]} are alternatives: set only one")
        if sources and not self.username:
            raise ValueError(f"mqtt.{sources[0]} is set but mqtt.username is not")
        tls_files = [k for k in ("tls_ca", "tls_cert", "tls_key") if getattr(self, k)]
        if tls_files and not self.tls:
            raise ValueError(f"mqtt.{tls_files[0]} is set but mqtt.tls is false")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("mqtt.tls_cert and mqtt.tls_key go together: set both or neither")
        for key in ("keepalive", "queue_size"):
            check_range(f"mqtt.{key}", getattr(self, key), 1)
        check_range("mqtt.image_width", self.image_width, 64, 4096)
        for key in ("max_rate_hz", "change_threshold", "image_interval"):
            check_range(f"mqtt.{key}", getattr(self, key), 0)
        if not 0 < self.reconnect_min_delay <= self.reconnect_max_delay:
            raise ValueError(
                "mqtt.reconnect_min_delay must be > 0 and <= mqtt.reconnect_max_delay, "
                f"not {self.reconnect_min_delay} (max {self.reconnect_max_delay})"
            )

    @property
    def device(self) -> str:
        return self.device_id or socket.gethostname().split(".")[0]

    @property
    def base_topic(self) -> str:
        return f"{self.prefix}/{self.device}"

    def resolve_password(self) -> str | None:
        """The password from whichever source is configured; a missing file or variable is a PiposerError."""
        if self.password_file:
            try:
                return Path(self.password_file).expanduser().read_text().splitlines()[0]
            except (OSError, IndexError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "empty or unreadable"
                raise PiposerError(f"mqtt.password_file: cannot read {self.password_file}: {reason}") from None
        if self.password_env:
            if self.password_env not in os.environ:
                raise PiposerError(f"mqtt.password_env: environment variable {self.password_env} is not set")
            return os.environ[self.password_env]
        return self.password


@dataclass(frozen=True)
class MqttSetup:
    """What the rest of the config tells the MQTT sink: the model, timings, zones, rules, taught poses,
    thresholds and the web console's address (the Home Assistant entities are generated from it)."""

    model_name: str = "posenet"
    stats_interval: float = 10.0
    count_hold: float = 0.0
    zones: tuple = ()  # rules.zones.NamedZone
    rules: tuple[str, ...] = ()
    gestures: tuple[str, ...] = ()
    keypoint_threshold: float = 0.3
    pose_threshold: float = 0.3  # [loop] min_pose_score
    configuration_url: str | None = None
    mirrored: bool = False


def _check_topic_part(key: str, value: str, slashes: bool) -> None:
    bad = set("+#\0") | (set() if slashes else {"/"})
    if not value or value.startswith("/") or value.endswith("/") or bad & set(value):
        allowed = "" if slashes else ", no '/'"
        raise ValueError(f"{key} = {value!r} is not a valid topic part (non-empty, no '+', '#'{allowed})")
