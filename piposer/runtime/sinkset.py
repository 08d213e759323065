"""Which sinks a config asks for, how each is built, and how a reload changes only what changed.

Each `SinkKind` names the slice of the config its sink is built from (`wanted`; None = not wanted) and how
to build it. The controller never names a concrete sink: a new output is one more `SinkKind` in `KINDS`.
On reload a sink whose slice is unchanged is kept as it is (no `offline`/`online`, no pin touched); one that
can take the new slice in place (`Sink.reconfigure`) does; the others are closed and rebuilt, and if any
build fails every change is undone, so a failed reload leaves the running sinks as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..sinks import Sink

if TYPE_CHECKING:
    from .controller import App

MQTT_CONNECT_WAIT = 5.0  # seconds the broker gets to accept us before READY (it is retried after that anyway)


@dataclass(frozen=True)
class SinkKind:
    """One kind of sink: the config slice it is built from (None: not wanted) and its builder."""

    name: str
    wanted: Callable[[object], object | None]
    build: Callable[[App, object], Sink]


@dataclass
class Built:
    kind: SinkKind
    settings: object
    sink: Sink


def _rules(config):
    wanted = config.rules or config.outputs or config.button
    return (config.rules, config.outputs, config.button, config.tracking.count_hold) if wanted else None


def _build_rules(app: App, settings) -> Sink:
    from ..sinks.gpio import RulesSink

    rules, outputs, button, count_hold = settings
    return RulesSink(rules, outputs, button=button, emit=app.bus.emit, on_request=app.request,
                     pin_factory=app.pin_factory, count_hold=count_hold)


def _mqtt(config):
    if not config.mqtt.enabled:
        return None
    from ..rules.library import PoseLibrary
    from ..rules.zones import named_zones
    from ..sinks.mqtt_settings import MqttSetup
    from ..sinks.hass import console_url

    gestures = tuple(PoseLibrary.load(config.poses.file).labels()) if config.poses.file else ()
    return config.mqtt, MqttSetup(
        model_name=config.model.name, stats_interval=config.loop.stats_interval,
        count_hold=config.tracking.count_hold, zones=tuple(named_zones(config.rules)),
        rules=tuple(rule.name for rule in config.rules), gestures=gestures,
        keypoint_threshold=config.model.keypoint_threshold, pose_threshold=config.loop.min_pose_score,
        configuration_url=console_url(config.web.bind, config.web.port, config.web.scheme) if config.web.enabled else None,
        mirrored=config.model.flip_horizontal,
    )


def _build_mqtt(app: App, settings) -> Sink:
    from ..sinks.mqtt import MqttSink

    mqtt, setup = settings
    sink = MqttSink(mqtt, setup, on_request=app.command)
    sink.start()
    if not sink.connected.wait(MQTT_CONNECT_WAIT):
        app.log(f"MQTT broker {mqtt.host}:{mqtt.port} not reachable yet ({sink.last_error}); "
                "running anyway and retrying in the background")
    return sink


def _snapshots(config):
    return (config.loop.snapshot_dir, config.model.flip_horizontal)


def _build_snapshots(app: App, settings) -> Sink:
    from ..sinks.snapshot import SnapshotSink
    from .settings import snapshot_folder

    snapshot_dir, mirrored = settings  # from the slice, not app.config: on reload that is still the old one
    return SnapshotSink(snapshot_folder(snapshot_dir, app.state_directory), emit=app.bus.emit, mirrored=mirrored)


def _osc(config):
    return (tuple(config.osc), config.tracking.max_age) if config.osc else None


def _build_osc(app: App, settings) -> Sink:
    from ..sinks.osc import OscSink

    destinations, leave_after = settings
    return OscSink(list(destinations), leave_after=leave_after, log=app.log)


def _web(config):
    from ..sinks.websocket import WebSlice

    if not config.web.enabled:
        return None
    return WebSlice(config.web, config.model.name, config.model.keypoint_threshold, config.rules,
                    [o.name for o in config.outputs], config.path, config.model.flip_horizontal, config.poses.file)


def _build_web(app: App, settings) -> Sink:
    from ..sinks.websocket import WebSocketSink

    return WebSocketSink(settings, on_request=app.command, stats=app.stats_dict, log=app.log)


# GPIO first (closest to real time, and its final `falling` events still go out over MQTT on close), then MQTT.
KINDS: list[SinkKind] = [
    SinkKind("RulesSink", _rules, _build_rules),
    SinkKind("MqttSink", _mqtt, _build_mqtt),
    SinkKind("SnapshotSink", _snapshots, _build_snapshots),
    SinkKind("OscSink", _osc, _build_osc),
    SinkKind("WebSocketSink", _web, _build_web),
]


class SinkSet:
    """The sinks one App runs, in `KINDS` order, with the settings each was built from."""

    def __init__(self, app: App, kinds: list[SinkKind] | None = None):
        self.app = app
        self.kinds = KINDS if kinds is None else kinds
        self.built: list[Built] = []

    @property
    def sinks(self) -> list[Sink]:
        return [b.sink for b in self.built]

    def open(self, config) -> None:
        """Build every sink `config` wants; on failure the ones already built stay in `built` for close()."""
        for kind in self.kinds:
            settings = kind.wanted(config)
            if settings is not None:
                self._add(Built(kind, settings, kind.build(self.app, settings)))

    def reload(self, config) -> list[str]:
        """Move to `config`'s sinks, changing only what changed; returns the names of the sinks changed.
        Raises (with every sink as it was) if a new sink cannot be built."""
        old = {b.kind.name: b for b in self.built}
        plan = [(kind, old.get(kind.name), kind.wanted(config)) for kind in self.kinds]
        closed: list[Built] = []
        fresh: list[Built] = []
        result: dict[str, Built] = {}
        try:
            for kind, before, settings in plan:
                if before is not None and settings == before.settings:
                    result[kind.name] = before
                elif before is not None and settings is not None and before.sink.can_reconfigure(settings):
                    result[kind.name] = before  # reconfigured below, once every build has succeeded
                else:
                    if before is not None:
                        self._remove(before)
                        closed.append(before)
                    if settings is not None:
                        built = Built(kind, settings, kind.build(self.app, settings))
                        fresh.append(built)
                        result[kind.name] = built
        except BaseException:
            for built in fresh:
                built.sink.close()
            for built in closed:  # same settings as before, so this normally succeeds
                self._restore(built)
            raise
        changed = []
        for kind, before, settings in plan:
            now = result.get(kind.name)
            if now is before:
                if before is not None and settings != before.settings:
                    before.sink.reconfigure(settings)
                    before.settings = settings
                    changed.append(kind.name)
                continue
            changed.append(kind.name)
            if now is not None:
                self.app.bus.subscribe(now.sink.on_event)
                if self.app.paused:
                    now.sink.pause("paused")
        self.built = [result[k.name] for k in self.kinds if k.name in result]
        return changed

    def close(self) -> list[str]:
        """Close every sink in order; returns what went wrong (closing goes on past errors)."""
        errors = []
        for built in self.built:
            try:
                self._remove(built)
            except Exception as exc:
                errors.append(f"{built.kind.name}: {type(exc).__name__}: {exc}")
        self.built = []
        return errors

    def _add(self, built: Built) -> None:
        self.built.append(built)
        self.app.bus.subscribe(built.sink.on_event)

    def _remove(self, built: Built) -> None:
        self.app.bus.unsubscribe(built.sink.on_event)
        built.sink.close()

    def _restore(self, built: Built) -> None:
        try:
            built.sink = built.kind.build(self.app, built.settings)
            self.app.bus.subscribe(built.sink.on_event)
        except Exception as exc:
            self.app.log(f"could not restore {built.kind.name} after a failed reload: {exc}")
            self.built.remove(built)
