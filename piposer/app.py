"""The appliance loop: source -> estimator -> tracker -> sinks, with stats, commands, pause and clean shutdown.

Everything runs in one thread except the capture thread (inside the source) and the MQTT client's
network thread, which only ever puts commands on a queue the loop drains between frames. Whatever
way the loop ends (end of file, SIGTERM, an exception), every sink is closed, `offline` is published
and the camera is released.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import commands
from .errors import PiposerError
from .sinks import Sink
from .sinks.files import write_bytes, write_image
from .sinks.payloads import percentiles_ms
from .sinks.render import draw
from .sources import FrameSource, open_source
from .systemd import Notifier
from .tracking import Tracker
from .types import Frame, Pose, pose_to_dict

SNAPSHOT_OVERLAY = frozenset({"links", "keypoints", "box"})
MQTT_CONNECT_WAIT = 5.0  # seconds the broker gets to accept us before READY (it is retried after that anyway)


@dataclass
class LoopSettings:
    """[loop]: frame-rate cap, which poses go on to the tracker and sinks, stats, and where snapshots go.

    `max_fps` = 0 runs as fast as frames come; a cap sleeps *before* taking the newest frame, so it
    saves CPU without adding latency. Poses scoring below `min_pose_score` are dropped before tracking
    (weak detections flicker and would each cost a fresh id). An empty `snapshot_dir` means $STATE_DIRECTORY/snapshots under
    systemd, else ./snapshots.
    """

    max_fps: float = 0.0
    min_pose_score: float = 0.3
    stats_interval: float = 10.0
    stats_window: int = 300
    snapshot_dir: str = ""

    def __post_init__(self):
        if self.max_fps < 0:
            raise ValueError(f"loop.max_fps must be >= 0 (0 = no cap), not {self.max_fps}")
        if not 0.0 <= self.min_pose_score <= 1.0:
            raise ValueError(f"loop.min_pose_score must be within 0..1, not {self.min_pose_score}")
        if self.stats_interval <= 0:
            raise ValueError(f"loop.stats_interval must be > 0 seconds, not {self.stats_interval}")
        if self.stats_window < 2:
            raise ValueError(f"loop.stats_window must be >= 2 frames, not {self.stats_window}")

    def snapshot_path(self) -> Path:
        if self.snapshot_dir:
            return Path(self.snapshot_dir).expanduser()
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return Path(state) / "snapshots" if state else Path("snapshots")


def rss_mb() -> float:
    """Resident memory of this process in MiB (from /proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class LoopStats:
    """Rolling per-stage timings, end-to-end latency and fps over the last `window` processed frames."""

    def __init__(self, window: int = 300):
        self.window = window
        self.started = time.monotonic()
        self.frames = 0
        self.people = 0
        self.stages: dict[str, deque[float]] = {}
        self.latency: deque[float] = deque(maxlen=window)
        self.done: deque[float] = deque(maxlen=window)

    def record(self, timings: dict[str, float], latency: float, done: float, people: int) -> None:
        for stage, seconds in timings.items():
            values = self.stages.get(stage)
            if values is None:
                values = self.stages[stage] = deque(maxlen=self.window)
            values.append(seconds)
        self.latency.append(latency)
        self.done.append(done)
        self.frames += 1
        self.people = people

    def fps(self) -> float:
        if len(self.done) < 2 or self.done[-1] <= self.done[0]:
            return 0.0
        return (len(self.done) - 1) / (self.done[-1] - self.done[0])

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "fps": round(self.fps(), 2),
            "people": self.people,
            "latency_ms": percentiles_ms(self.latency, (50, 95, 99)),
            "inference_ms": percentiles_ms(self.stages.get("estimate", ())),
            "stages_ms": {stage: percentiles_ms(values, (50,))["p50"] for stage, values in self.stages.items()},
            "uptime_s": round(time.monotonic() - self.started, 1),
            "rss_mb": round(rss_mb(), 1),
        }


class App:
    """One run of the pipeline built from a Config; `open()`, then `run()`, and always `close()`.

    Thread-safe entry points: `command(cmd)` (e.g. from the MQTT thread) and `stop()` (e.g. from a
    signal handler). `run()` returns why it ended: "finished" (end of input), "stopped" or "reload".
    """

    def __init__(self, config, *, load_config: Callable[[], object] | None = None,
                 notifier: Notifier | None = None, log: Callable[[str], None] = print,
                 stop: threading.Event | None = None):
        self.config = config
        self.load_config = load_config
        self.notifier = notifier or Notifier()
        self.log = log
        self.settings: LoopSettings = config.loop
        self.tracker = Tracker(config.tracking)
        self.stats = LoopStats(self.settings.stats_window)
        self.paused = False
        self.min_pose_score = self.settings.min_pose_score
        self.next_config = None
        self.reload_reply: dict = {}  # the reload command's reply fields, for a reload that fails to open
        self.estimator = None
        self.source: FrameSource | None = None
        self.mqtt = None
        self.rules = None
        self.sinks: list[Sink] = []
        self._commands: queue.Queue = queue.Queue()
        self._stop = stop or threading.Event()
        self._last_frame: Frame | None = None
        self._snapshot_requests: list[commands.Command] = []
        self._last_start = 0.0

    # -- thread-safe controls --------------------------------------------------------------

    def command(self, cmd: commands.Command) -> None:
        """Queue a command for the loop thread (MQTT's callback calls this)."""
        self._commands.put(cmd)

    def stop(self) -> None:
        self._stop.set()

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> App:
        """Load the model, open the source, connect the sinks; on any failure close what was opened."""
        try:
            self.notifier.status("loading model")
            self.estimator = self._estimator()
            self.notifier.status("opening source")
            self.source = open_source(self.config.source, log=self.log)
            self.log(f"source: {self.source.description}")
            self.notifier.status("connecting sinks")
            self.sinks = self._sinks()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the sinks in order: GPIO first (outputs safe, its final `falling` events still go out over
        MQTT), then MQTT (`offline` published); then the source (camera released), then the model."""
        parts = [*self.sinks, self.source, self.estimator]
        self.sinks, self.rules, self.source, self.estimator, self._last_frame = [], None, None, None, None
        errors = []
        for part in parts:
            if part is None:
                continue
            try:
                part.close()
            except Exception as exc:  # one broken part must not keep the others open
                errors.append(f"{type(part).__name__}: {exc}")
        self.mqtt = None
        if errors:
            self.log("errors while closing: " + "; ".join(errors))

    def __enter__(self) -> App:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, max_frames: int | None = None) -> str:
        """Process frames until the input ends, `stop()` is called, `max_frames` are done or a reload is due."""
        self.notifier.ready(f"running: {self.source.description}")
        next_stats = time.monotonic() + self.settings.stats_interval
        while not self._stop.is_set():
            self._handle_commands()
            if self.next_config is not None:
                return "reload"
            self._publish_source_events()
            now = time.monotonic()
            if now >= next_stats:
                self.publish_stats()
                next_stats = now + self.settings.stats_interval
            if self.paused and not self.source.live and not self._snapshot_requests:
                self.notifier.frame_advanced()  # deliberately idle, not stuck
                self._stop.wait(0.1)
                continue
            self._pace()
            started = time.monotonic()
            frame = self.source.read(timeout=0.5)
            if frame is None:
                if self.source.finished:
                    return "finished"
                continue
            self.notifier.frame_advanced()
            if self.paused:
                if self._snapshot_requests:  # served from a fresh frame, which nothing else sees
                    self._save_snapshot(frame, self._estimate(frame))
                continue
            self._process(frame, {"read": time.monotonic() - started})
            if max_frames is not None and self.stats.frames >= max_frames:
                return "finished"
        return "stopped"

    # -- one frame -------------------------------------------------------------------------

    def _process(self, frame: Frame, timings: dict[str, float]) -> None:
        t = time.monotonic()
        timings["frame_age"] = t - frame.timestamp  # how stale the frame is when inference starts
        poses = self._estimate(frame)
        timings["estimate"] = (t1 := time.monotonic()) - t
        self.tracker.update(poses, self.source.media_time(frame))
        timings["track"] = (t := time.monotonic()) - t1
        for sink in self.sinks:
            sink.publish(frame, poses)
            timings[type(sink).__name__] = (t1 := time.monotonic()) - t
            t = t1
        if self._snapshot_requests:
            self._save_snapshot(frame, poses)
        self._last_frame = frame
        self.stats.record(timings, t - frame.timestamp, t, len(poses))

    def _estimate(self, frame: Frame) -> list[Pose]:
        return [p for p in self.estimator.estimate(frame) if p.score >= self.min_pose_score]

    def _pace(self) -> None:
        """With max_fps set, wait out the rest of the frame period before taking the newest frame."""
        if self.settings.max_fps > 0:
            due = self._last_start + 1.0 / self.settings.max_fps
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        self._last_start = time.monotonic()

    # -- stats, events, commands ---------------------------------------------------------------

    def stats_dict(self) -> dict:
        data = self.stats.as_dict()
        data["paused"] = self.paused
        data["model"] = getattr(self.estimator, "model_name", None)
        data["estimator_ms"] = {k: round(v * 1000, 2) for k, v in getattr(self.estimator, "timings", {}).items()}
        data["source"] = self.source.stats()
        return data

    def publish_stats(self) -> None:
        data = self.stats_dict()
        latency = data["latency_ms"]["p50"]
        self.notifier.status(
            f"{'paused' if self.paused else 'running'}: {data['fps']} fps, latency p50 {latency} ms, "
            f"{data['people']} people, source {'up' if data['source']['connected'] else 'DOWN'}"
        )
        if self.mqtt is not None:
            self.mqtt.publish_stats(data)

    def event(self, kind: str, **fields) -> None:
        """Log an event and publish it on MQTT when connected."""
        self.log(f"event {kind}: {json.dumps(fields, default=str)}")
        if self.mqtt is not None:
            self.mqtt.publish_event(kind, **fields)

    def _publish_source_events(self) -> None:
        for event in self.source.events():
            self.event(event.kind, **event.fields)

    def _handle_commands(self) -> None:
        while True:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return
            self._apply(cmd)

    def _apply(self, cmd: commands.Command) -> None:
        reply = {"command": cmd.name, **({"id": cmd.request_id} if cmd.request_id is not None else {})}
        if isinstance(cmd, (commands.Pause, commands.Resume, commands.TogglePause)):
            pause = not self.paused if isinstance(cmd, commands.TogglePause) else isinstance(cmd, commands.Pause)
            if pause and not self.paused:
                self._pause_sinks()
            self.paused = pause
            self.event("paused" if self.paused else "resumed", **reply)
            self.publish_stats()
        elif isinstance(cmd, commands.Snapshot):
            self._snapshot_requests.append(cmd)
        elif isinstance(cmd, commands.ReloadConfig):
            self._reload(reply)
        elif isinstance(cmd, commands.SetThresholds):
            self._set_thresholds(cmd, reply)

    def _reload(self, reply: dict) -> None:
        if self.load_config is None:
            self.event("command_failed", **reply, error="no config file to reload from")
            return
        try:
            self.next_config = self.load_config()
        except PiposerError as exc:  # keep running on the old config
            self.event("command_failed", **reply, error=str(exc))
            return
        self.reload_reply = reply
        self.event("reloading", **reply)

    def _pause_sinks(self) -> None:
        """Pausing leaves nobody detected: GPIO outputs go to their safe values at once (active rules report
        `falling` with reason "paused") and MQTT gets one empty frame, so `state` does not keep showing
        whoever was there when the model stopped."""
        for sink in self.sinks:
            if sink is self.rules:
                sink.release("paused")
            elif self._last_frame is not None:
                sink.publish(self._last_frame, [])

    def _set_thresholds(self, cmd: commands.SetThresholds, reply: dict) -> None:
        """Keypoint threshold: the estimator's shared [model] setting; pose threshold: the loop's filter."""
        if cmd.keypoint_threshold is not None:
            self.estimator.model_settings.keypoint_threshold = cmd.keypoint_threshold
        if cmd.pose_threshold is not None:
            self.min_pose_score = cmd.pose_threshold
        self.event("thresholds", **reply, keypoint_threshold=self.estimator.model_settings.keypoint_threshold,
                   pose_threshold=self.min_pose_score)

    def _save_snapshot(self, frame: Frame, poses: list[Pose]) -> None:
        """Write the frame with its poses drawn (JPEG) and the poses (JSON), once for all pending snapshot requests."""
        requests, self._snapshot_requests = self._snapshot_requests, []
        folder = self.settings.snapshot_path()
        stem = folder / time.strftime("snapshot-%Y%m%d-%H%M%S", time.localtime(frame.wall_time or time.time()))
        stem = stem.with_name(f"{stem.name}-{frame.index}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            image = draw(frame.image, poses, SNAPSHOT_OVERLAY, mirrored=self.config.model.flip_horizontal)
            write_image(stem.with_suffix(".jpg"), image)
            write_bytes(stem.with_suffix(".json"), json.dumps([pose_to_dict(p) for p in poses]).encode())
        except (OSError, PiposerError) as exc:
            for cmd in requests:
                self.event("command_failed", command=cmd.name, id=cmd.request_id, error=f"snapshot to {folder}: {exc}")
            return
        for cmd in requests:
            self.event("snapshot", command=cmd.name, id=cmd.request_id, path=str(stem.with_suffix(".jpg")),
                       people=len(poses))

    # -- building --------------------------------------------------------------------------

    def _estimator(self):
        from .estimators import create

        return create(self.config)

    def _sinks(self) -> list[Sink]:
        """GPIO rules first (closest to real time), then MQTT; MQTT gets a few seconds to connect before READY."""
        sinks: list[Sink] = []
        cfg = self.config
        if cfg.rules or cfg.outputs or cfg.button:
            from .gpio import RulesSink

            self.rules = RulesSink(cfg.rules, cfg.outputs, button=cfg.button, on_event=self.event,
                                   on_request=self._request)
            sinks.append(self.rules)
        mqtt = cfg.mqtt
        if mqtt.enabled:
            from .sinks.mqtt import MqttSink

            self.mqtt = MqttSink(mqtt, model_name=self.estimator.model_name, on_command=self.command,
                                 stats_interval=self.settings.stats_interval)
            sinks.append(self.mqtt)
            self.mqtt.start()
            if not self.mqtt.connected.wait(MQTT_CONNECT_WAIT):
                self.log(f"MQTT broker {mqtt.host}:{mqtt.port} not reachable yet ({self.mqtt.last_error}); "
                         "running anyway and retrying in the background")
        return sinks

    def _request(self, name: str) -> None:
        """The GPIO button (from gpiozero's thread) asks for "toggle", which the loop turns into pause or
        resume from its own state, or for "snapshot"."""
        self.command(commands.TogglePause() if name == "toggle" else commands.COMMANDS[name]())


def run(config, *, load_config: Callable[[], object] | None = None, max_frames: int | None = None,
        log: Callable[[str], None] = print) -> int:
    """Run the appliance until SIGTERM/SIGINT or the end of the input; SIGHUP or a `reload` command re-reads
    the config via `load_config`. A reloaded config that cannot be opened (missing model or password file,
    busy camera) is reported as `command_failed` and the previous one is reopened. Returns the process exit
    code (0 on a clean stop)."""
    notifier = Notifier()
    stop = threading.Event()  # shared by every App, so a SIGTERM while one closes and the next opens is kept
    current: App | None = None

    def on_stop(signum, _frame):
        log(f"received {signal.Signals(signum).name}, shutting down")
        stop.set()

    def on_hup(_signum, _frame):
        if current is not None:
            current.command(commands.ReloadConfig())

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    fallback, failed = None, None  # the config before a reload, and the reload's failure to report
    failed_reply: dict = {}  # the reload command's reply fields, echoed in its failure
    try:
        while not stop.is_set():
            current = App(config, load_config=load_config, notifier=notifier, log=log, stop=stop)
            try:
                current.open()
            except PiposerError as exc:
                if fallback is None:
                    raise
                log(f"reloaded config cannot be opened ({exc}); going back to the previous one")
                config, fallback, failed = fallback, None, {**failed_reply, "error": f"reload: {exc}"}
                continue
            try:
                if failed is not None:
                    current.event("command_failed", **failed)
                    failed = None
                reason = current.run(max_frames=max_frames)
                log(f"loop {reason} after {current.stats.frames} frames: {json.dumps(current.stats_dict())}")
                (notifier.reloading if reason == "reload" else notifier.stopping)()
            finally:
                current.close()
            if reason != "reload":
                return 0
            fallback, failed_reply, config = config, current.reload_reply, current.next_config
        notifier.stopping()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
