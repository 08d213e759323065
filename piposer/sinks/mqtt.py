"""The MQTT sink: publishes poses, state, zones, rules, controls, stats, events and pictures under
`<prefix>/<device_id>/`, announces them to Home Assistant, and takes `set` commands.

The frame loop only ever appends to a bounded in-memory outbox; a sender thread hands messages to
paho's network thread while connected, so a slow or absent broker costs dropped messages (counted),
never a stalled camera. docs/mqtt.md is the user-facing contract of the topics and payloads.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ..commands import MAX_PAYLOAD, Command, CommandError, Snapshot, parse_command
from ..errors import PiposerError
from ..events import Edge, Event, EventKind
from ..rules.zones import ZoneCounts
from ..tracking.counts import HeldCount
from ..types import Frame, Pose
from . import Sink
from .hass import discovery_configs, node_id
from .mqtt_settings import MqttSettings, MqttSetup
from .outbox import Message, Outbox
from .payloads import cpu_temperature, encode, event_payload, percentiles_ms, poses_payload, state_payload
from .picture import PictureEncoder
from .throttle import Throttle

log = logging.getLogger("piposer.mqtt")

WINDOW = 64  # messages handed to paho but not yet written (QoS 0) or acknowledged (QoS 1/2)
LATENCY_SAMPLES = 10_000


TOPICS = ("availability", "poses", "state", "zones", "rules", "controls", "stats", "events", "image", "set",
          "discovery")


class MqttSink(Sink):
    """Publishes to `<prefix>/<device_id>/...` (docs/mqtt.md) and listens on `.../set`.

    `setup` is what the rest of the config says (model, zones, rules, thresholds). `on_request` is called
    from paho's network thread with each validated command; it should only queue the command for the app's
    own thread. `clock` is the monotonic clock frames are stamped with. Events from the bus go out on
    `events`, loop stats on `stats`; pausing publishes one empty frame and `state` with status "paused".
    The people counts are debounced over `setup.count_hold` seconds (tracking/counts.py).
    """

    name = "MqttSink"

    def __init__(
        self,
        settings: MqttSettings,
        setup: MqttSetup = MqttSetup(),
        *,
        on_request: Callable[[Command], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.setup = setup
        self.on_request = on_request
        self.clock = clock
        base = settings.base_topic
        self.topics = {name: f"{base}/{name}" for name in TOPICS}
        self.discovery_status_topic = f"{settings.discovery_prefix}/status"
        self.connected = threading.Event()
        self._disconnected = threading.Event()  # no socket open (set between connections)
        self._disconnected.set()
        self.last_error: str | None = None
        self.reconnects = 0
        self.unsent = 0  # handed to paho, then lost with the connection (QoS 0)
        self._outbox = Outbox(settings.queue_size)
        self._throttle = Throttle(settings.max_rate_hz, settings.only_on_change, settings.change_threshold)
        self._state: dict | None = None
        self._people = HeldCount(setup.count_hold)
        self._paused = False
        self._zones = ZoneCounts(list(setup.zones), setup.count_hold)
        self._zone_counts: dict[str, int] = {}
        self._active: set[tuple[str, object]] = set()  # (rule, person) between a rising and a falling edge
        self._rules: dict[str, bool] = {}
        self._controls: dict = {}
        self._announced: set[str] = set()  # discovery topics this sink has published configs on
        self._picture_asked = False
        self._next_picture = 0.0
        self._pictures = (PictureEncoder(self._picture_encoded, settings.image_width, setup.mirrored)
                          if settings.image else None)
        self._track_setup()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)  # appended by the sender thread
        self._latencies_lock = threading.Lock()
        self._last_frame: Frame | None = None
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()
        self._window_moved = threading.Event()
        self._stopping = threading.Event()
        self._ever_connected = False
        self._answered = False  # whether the broker answered the current connection attempt
        self._sender: threading.Thread | None = None
        self._client = self._make_client(settings.resolve_password())

    def _make_client(self, password: str | None) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"piposer-{s.device}", protocol=mqtt.MQTTv311)
        client.will_set(self.topics["availability"], "offline", qos=1, retain=True)
        if s.username:
            client.username_pw_set(s.username, password)
        if s.tls:
            _set_tls(client, s)
        client.reconnect_delay_set(s.reconnect_min_delay, s.reconnect_max_delay)
        client.max_inflight_messages_set(WINDOW)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = lambda *args: self._window_moved.set()
        return client

    # --- the app's side: never blocks --------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background; an unreachable broker is logged and retried, not raised."""
        s = self.settings
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self._client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="piposer-mqtt-sender", daemon=True)
        self._sender.start()

    @property
    def wants_frame(self) -> bool:
        return self._picture_asked and self._pictures is not None

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        """Queue the frame's `poses` message (when the throttle admits it), `state` and `zones` when they
        changed, and a picture when one is due. While paused only an asked-for picture is taken."""
        if self._paused:
            self._picture(frame, poses, arrived=False)
            return
        self._last_frame = frame
        people = self._people.update(len(poses), frame.timestamp)
        state = self._state
        running = state is not None and state["status"] == "running"
        if not running or state["people"] != people:
            self._state = state_payload(people, frame.wall_time or time.time())
            self._put_latest("state", self._state)
        if self._zones.zones:
            self._set("zones", "_zone_counts", self._zones.update(poses, frame.timestamp))
        self._picture(frame, poses, arrived=people > 0 and not (running and state["people"] > 0))
        if self._throttle.admit(self.clock(), frame, poses):
            payload = encode(poses_payload(frame, poses, self.setup.model_name))
            self._outbox.put_pose(Message(self.topics["poses"], payload, self.settings.qos, False, frame.timestamp))

    def _picture(self, frame: Frame, poses: list[Pose], arrived: bool) -> None:
        """Hand the frame to the encoder on arrival, when asked, and every `image_interval` seconds."""
        if self._pictures is None:
            return
        now, interval = self.clock(), self.settings.image_interval
        if self._picture_asked or arrived or (interval > 0 and now >= self._next_picture and not self._paused):
            self._picture_asked = False
            self._next_picture = now + interval
            self._pictures.submit(frame.image, poses)

    def _picture_encoded(self, jpeg: bytes) -> None:
        self._outbox.put_latest(Message(self.topics["image"], jpeg, 1, True))

    def on_command(self, command) -> None:
        if isinstance(command, Snapshot):
            self._picture_asked = True

    def publish_event(self, kind: str, **fields) -> None:
        """Queue a message on `events`, e.g. `publish_event("rule", name="wave", edge="rising")`."""
        self._outbox.put_event(Message(self.topics["events"], encode(event_payload(kind, fields)), self.settings.qos))

    def on_event(self, event: Event) -> None:
        """Publish the event; rule edges also update `rules`, new thresholds `controls`."""
        self.publish_event(event.kind, **event.fields)
        if event.kind == EventKind.RULE and "rule" in event.fields:
            key = (event.fields["rule"], event.fields.get("person"))
            if event.fields.get("edge") == Edge.RISING:
                self._active.add(key)
            else:
                self._active.discard(key)
            self._set("rules", "_rules", self._rule_states())
        elif event.kind == EventKind.THRESHOLDS:
            fields = {k: event.fields[k] for k in ("keypoint_threshold", "pose_threshold") if k in event.fields}
            self._set("controls", "_controls", {**self._controls, **fields})

    def _rule_states(self) -> dict[str, bool]:
        """Each configured rule: whether it is active for anyone."""
        active = {rule for rule, _ in self._active}
        return {rule: rule in active for rule in self.setup.rules}

    def _set(self, topic: str, attribute: str, value: dict) -> None:
        """Remember `value` as the retained `topic`'s content and queue it when it changed."""
        if value != getattr(self, attribute):
            setattr(self, attribute, value)
            self._put_latest(topic, value)

    def on_stats(self, stats: dict) -> None:
        self.publish_stats(stats)

    def state(self) -> dict:
        s = self.settings
        return {"broker": f"{s.host}:{s.port}", "connected": self.connected.is_set(), "last_error": self.last_error}

    def pause(self, reason: str) -> None:
        """Nobody is detected while paused: one empty frame and `state` with status "paused", so nothing keeps
        showing who was there, and Home Assistant shows the presence entities as unavailable, not empty."""
        self._people.reset()
        self._zones.reset()
        self._paused = True
        if self._last_frame is not None:
            payload = encode(poses_payload(self._last_frame, [], self.setup.model_name))
            self._outbox.put_pose(Message(self.topics["poses"], payload, self.settings.qos))
        self._state = state_payload(0, time.time(), "paused")
        self._put_latest("state", self._state)
        self._set("zones", "_zone_counts", dict.fromkeys(self._zone_counts, 0))
        self._set("controls", "_controls", {**self._controls, "detection": "off"})

    def resume(self) -> None:
        """`state` says "running" again with the next frame; the switch follows at once."""
        self._paused = False
        self._set("controls", "_controls", {**self._controls, "detection": "on"})

    def can_reconfigure(self, settings) -> bool:
        """Only the connection's own settings need a new connection: zones, rules, thresholds, the model
        name and the rest are taken in place, so a reload never makes the entities unavailable."""
        mqtt, _setup = settings
        return mqtt == self.settings

    def reconfigure(self, settings) -> None:
        _mqtt, setup = settings
        self.setup = setup
        self._people.hold = setup.count_hold
        if list(setup.zones) != self._zones.zones:  # counts of zones kept stay until the next frame recounts
            self._zones = ZoneCounts(list(setup.zones), setup.count_hold)
        if self._pictures is not None:
            self._pictures.mirrored = setup.mirrored
        self._track_setup()
        if self.connected.is_set():
            self._publish_retained()

    def _track_setup(self) -> None:
        """Start the retained `zones`, `rules` and `controls` content from the setup (a reload's or the first)."""
        self._active = {(rule, person) for rule, person in self._active if rule in self.setup.rules}
        self._zones.hold = self.setup.count_hold
        self._zone_counts = {z.name: self._zone_counts.get(z.name, 0) for z in self._zones.zones}
        self._rules = self._rule_states()
        self._controls = {"detection": "off" if self._paused else "on",
                          "keypoint_threshold": self.setup.keypoint_threshold,
                          "pose_threshold": self.setup.pose_threshold}

    def publish_stats(self, stats: dict) -> None:
        """Queue the `stats` message: the app's figures, plus the CPU temperature unless the app gave it, plus
        the sink's own under `mqtt` (drops, messages lost with the connection, latency)."""
        with self._latencies_lock:
            latencies = list(self._latencies)
            self._latencies.clear()
        message = {
            "cpu_temp_c": cpu_temperature(),
            **stats,
            "mqtt": {
                "queue_drops": self.queue_drops,
                "unsent": self.unsent,
                "reconnects": self.reconnects,
                "publish_latency_ms": percentiles_ms(latencies),
            },
        }
        self._outbox.put_event(Message(self.topics["stats"], encode(message), self.settings.qos))

    @property
    def queue_drops(self) -> int:
        """Messages dropped so far because the outgoing queue was full."""
        return self._outbox.drops

    def close(self, timeout: float = 2.0) -> None:
        """Flush what is queued, publish `offline` (retained) and disconnect, waiting at most about `timeout` s."""
        if self._stopping.is_set():
            return
        deadline = time.monotonic() + timeout
        if self._pictures is not None:
            self._pictures.close(timeout / 4)
        if self.connected.is_set() and self._sender is not None:
            self._drain(deadline - timeout / 2)
            self._put_latest("availability", "offline")
            self._drain(deadline)
        self._stopping.set()
        if self._sender is not None:
            self._sender.join(max(0.0, deadline - time.monotonic()) + 0.5)
        self._client.disconnect()
        if not self._disconnected.wait(max(0.0, deadline - time.monotonic())):
            self._hang_up()
        self._client.loop_stop()

    def _hang_up(self) -> None:
        """Shut the socket of a connection whose broker stopped answering, so paho's thread ends now
        rather than after the keepalive timeout."""
        sock = self._client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- queue -> paho --------------------------------------------------------------------------

    def _put_latest(self, name: str, data: dict | str) -> None:
        payload = data.encode() if isinstance(data, str) else encode(data)
        self._outbox.put_latest(Message(self.topics[name], payload, 1, True))

    def _drain(self, deadline: float) -> None:
        """Wait until the outbox is empty and paho has sent everything, or the deadline passes."""
        while time.monotonic() < deadline and self.connected.is_set():
            if not self._outbox and all(info.is_published() for info in list(self._pending)):
                return
            time.sleep(0.01)

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            if not self.connected.wait(0.2):
                continue
            if self._prune() >= WINDOW:
                self._window_moved.wait(0.05)
                self._window_moved.clear()
                continue
            message = self._outbox.get(timeout=0.2, when=self.connected.is_set)
            if message is None:
                continue
            info = self._client.publish(message.topic, message.payload, message.qos, message.retain)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._pending.append(info)
                if message.created is not None:
                    with self._latencies_lock:
                        self._latencies.append(self.clock() - message.created)
            else:
                self.unsent += 1

    def _prune(self) -> int:
        """Forget messages paho has finished with, counting those the connection took down; returns how many remain."""
        while self._pending and self._pending[0].is_published():
            if self._pending.popleft().rc == MQTTErrorCode.MQTT_ERR_CONN_LOST:
                self.unsent += 1
        return len(self._pending)

    # --- paho callbacks (network thread) ---------------------------------------------------------
    # An exception escaping a paho callback ends paho's network thread for good (no more commands, no
    # reconnects), so every callback body is guarded: the exception is logged once and, for a command,
    # answered with `command_failed`.

    def healthy(self) -> bool:
        """Whether paho's network thread is running: False before start(), after close(), and when the
        thread died; then the app should close() (the Last Will or a last `offline` still goes out) and exit."""
        thread = self._client._thread
        return thread is not None and thread.is_alive()

    def _callback_failed(self, where: str, exc: Exception, command=None, request_id=None, reply: bool = False) -> None:
        """Log an unexpected exception once per kind (repeats at debug level) and answer the requester, if any."""
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        seen = self.__dict__.setdefault("_callback_failures", set())
        key = (where, error)
        if key in seen:
            log.debug("MQTT %s failed again: %s", where, error)
        else:
            if len(seen) < 100:
                seen.add(key)
            log.error("MQTT %s failed (kept running; repeats are logged at debug level): %s", where, error,
                      exc_info=exc)
        if reply:
            try:
                self.publish_event("command_failed", command=command, id=request_id, error=f"internal error: {error}")
            except Exception:  # noqa: BLE001 - the reply is best effort; the thread must survive
                log.debug("could not answer a failed command", exc_info=True)

    def _on_pre_connect(self, client, userdata) -> None:
        self._answered = False

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            self._connected(client, reason_code)
        except Exception as exc:  # noqa: BLE001 - see above
            self._callback_failed("on_connect", exc)

    def _connected(self, client, reason_code) -> None:
        s = self.settings
        self._answered = True
        self._disconnected.clear()
        if reason_code.is_failure:
            message = f"MQTT broker {s.host}:{s.port} refused the connection: {reason_code}{_hint(reason_code)}"
            self._report(message, logging.ERROR)
            return
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.last_error = None
        log.info("connected to MQTT broker %s:%d as %s", s.host, s.port, s.device)
        if self.on_request is not None:
            client.subscribe(self.topics["set"], qos=1)
        if s.discovery:
            client.subscribe([(self.discovery_status_topic, 1), (self.topics["discovery"], 1)])
        self._put_latest("availability", "online")
        if self._state is None:  # replaces the last run's retained state: nothing is detected yet
            self._state = state_payload(0, time.time(), "starting")
        self._publish_retained()
        self.connected.set()

    def _publish_retained(self) -> None:
        """(Re)publish every retained topic but availability: state, zones, rules, controls and discovery."""
        self._put_latest("state", self._state)
        self._put_latest("controls", self._controls)
        if self._zone_counts:
            self._put_latest("zones", self._zone_counts)
        if self._rules:
            self._put_latest("rules", self._rules)
        if self.settings.discovery:
            self._announce()

    def _on_connect_fail(self, client, userdata) -> None:
        try:
            s = self.settings
            self._report(f"cannot reach MQTT broker {s.host}:{s.port}; retrying (backoff up to {s.reconnect_max_delay:g} s)")
        except Exception as exc:  # noqa: BLE001 - see above
            self._callback_failed("on_connect_fail", exc)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        try:
            was_connected = self.connected.is_set()
            self.connected.clear()
            self._disconnected.set()
            if self._stopping.is_set():
                return
            if was_connected:
                log.warning("lost connection to MQTT broker (%s); reconnecting", reason_code)
            elif not self._answered:  # the socket opened but the broker hung up before answering CONNECT
                s = self.settings
                self._report(f"MQTT broker {s.host}:{s.port} closed the connection before accepting it: "
                             "check mqtt.tls and the TLS files")
        except Exception as exc:  # noqa: BLE001 - see above
            self._callback_failed("on_disconnect", exc)

    def _report(self, message: str, level: int = logging.WARNING) -> None:
        """Remember a connection problem; log each different one once (repeats at debug level)."""
        log.log(logging.DEBUG if message == self.last_error else level, message)
        self.last_error = message

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic == self.discovery_status_topic:
                if message.payload == b"online":
                    self._announce()
            elif message.topic == self.topics["discovery"]:
                self._forget_stale(message.payload)
            elif message.topic == self.topics["set"]:
                self._handle_command(message)
        except Exception as exc:  # noqa: BLE001 - see above
            is_command = getattr(message, "topic", None) == self.topics["set"]
            self._callback_failed("on_message", exc, *_requester(message), reply=is_command)

    def _announce(self) -> None:
        """Publish every discovery config, remove those announced before but no longer wanted (a zone or rule
        deleted or renamed), and record the list, retained on `discovery`, for the next run."""
        configs = discovery_configs(self.settings, self.setup)
        for topic in sorted(self._announced - set(configs)):
            self._outbox.put_latest(Message(topic, b"", 1, True))
        for topic, config in configs.items():
            self._outbox.put_latest(Message(topic, encode(config), 1, True))
        self._announced = set(configs)
        self._outbox.put_latest(Message(self.topics["discovery"], encode(sorted(configs)), 1, True))

    def _forget_stale(self, payload: bytes) -> None:
        """The retained `discovery` list (an earlier run's, or ours echoed): empty every config on it that
        this run does not announce. Only this device's own discovery topics are ever touched."""
        try:
            listed = json.loads(payload) if payload else []
        except ValueError:
            listed = []
        if not isinstance(listed, list):
            listed = []
        prefix, node = self.settings.discovery_prefix, node_id(self.settings.device)
        ours = {t for t in listed if isinstance(t, str) and t.startswith(f"{prefix}/") and t.split("/")[-3:-2] == [node]}
        for topic in sorted(ours - self._announced):
            self._outbox.put_latest(Message(topic, b"", 1, True))

    def _handle_command(self, message: mqtt.MQTTMessage) -> None:
        try:
            if message.retain:
                raise CommandError("retained commands are ignored: publish to set without the retain flag")
            command = parse_command(message.payload)
        except CommandError as exc:
            log.warning("rejected command on %s: %s", message.topic, exc)
            self.publish_event("command_error", error=str(exc), id=exc.request_id)
            return
        self.publish_event("command", command=command.name, id=command.request_id)
        try:
            self.on_request(command)
        except Exception as exc:  # noqa: BLE001 - the app's handler must not kill paho's network thread
            self._callback_failed(f"command {command.name}", exc, command.name, command.request_id, reply=True)


def _requester(message) -> tuple[str | None, str | int | None]:
    """Best effort: the `command` and `id` of a `set` payload that made a callback fail, to address the reply."""
    try:
        data = json.loads(message.payload) if len(message.payload) <= MAX_PAYLOAD else None
        if not isinstance(data, dict):
            return None, None
        command, request_id = data.get("command"), data.get("id")
        command = command if isinstance(command, str) and len(command) <= 40 else None
        if not (isinstance(request_id, str) and len(request_id) <= 64
                or type(request_id) is int and abs(request_id) < 2**63):
            request_id = None
        return command, request_id
    except Exception:  # noqa: BLE001 - RecursionError, bad bytes, ...: then nobody is addressed
        return None, None


def _set_tls(client: mqtt.Client, s: MqttSettings) -> None:
    for key in ("tls_ca", "tls_cert", "tls_key"):
        path = getattr(s, key)
        if path and not Path(path).expanduser().is_file():
            raise PiposerError(f"mqtt.{key}: no such file {path}")
    expand = lambda path: path and str(Path(path).expanduser())  # noqa: E731
    try:
        client.tls_set(ca_certs=expand(s.tls_ca), certfile=expand(s.tls_cert), keyfile=expand(s.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise PiposerError(f"mqtt.tls_ca / tls_cert / tls_key: cannot load the TLS files: {exc}") from None


def _hint(reason_code) -> str:
    if reason_code.value in (4, 5, 134, 135):  # bad user name or password / not authorized (3.1.1 and 5)
        return " (check mqtt.username and the password)"
    return ""
