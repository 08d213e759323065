"""The controller: one run of the appliance's pipeline, with commands, pause, thresholds and stats.

Threads: the loop runs in the caller's thread and owns the pipeline (estimator, tracker, sinks'
`publish`). Other threads only hand work over: the source's capture thread through its frame slot, paho's
network thread and gpiozero's button thread through `command()` (a queue drained between frames), a
signal handler through `stop()` (an Event). The MQTT sender thread lives inside MqttSink and shares only
its outbox and a locked latency list with it. Whatever way the loop ends, `close()` closes every sink
(outputs safe, `offline` published), releases the camera and the model.
"""

from __future__ import annotations

import queue
import threading
import time
from enum import StrEnum
from typing import Callable

from .. import commands
from ..errors import PiposerError
from ..events import EventBus, EventKind
from ..modelstore import ModelStore
from ..sources import open_source
from .systemd import Notifier
from ..tracking import Tracker
from .pipeline import LoopStats, Pipeline
from .settings import LoopSettings
from .sinkset import SinkSet

class Ended(StrEnum):
    """Why `App.run()` returned."""

    FINISHED = "finished"  # the input ended, or max_frames were processed
    STOPPED = "stopped"    # stop() was called (a signal)
    FAILED = "failed"      # a sink's worker thread died: exit non-zero so systemd restarts the service


class App:
    """The running appliance built from a Config; `open()`, then `run()`, and always `close()`.

    Thread-safe entry points: `command(cmd)` (e.g. from the MQTT thread) and `stop()` (e.g. from a
    signal handler). A `reload` command moves to the re-read config in place, between frames.
    `pin_factory` goes to every gpiozero device (a MockFactory in tests); `state_directory` is systemd's
    $STATE_DIRECTORY (where snapshots go by default); `store` finds the model files (default: the
    environment's).
    """

    def __init__(self, config, *, load_config: Callable[[], object] | None = None,
                 notifier: Notifier | None = None, log: Callable[[str], None] = print,
                 stop: threading.Event | None = None, pin_factory=None, state_directory: str = "",
                 store: ModelStore | None = None):
        self.config = config
        self.store = store or ModelStore.from_environment()
        self.state_directory = state_directory
        self.load_config = load_config
        self.notifier = notifier or Notifier()
        self.log = log
        self.pin_factory = pin_factory
        self.settings: LoopSettings = config.loop
        self.bus = EventBus(log)
        self.pipeline: Pipeline | None = None
        self.paused = False
        self.sinks = SinkSet(self)
        self._stats = LoopStats(self.settings.stats_window)
        self._commands: queue.Queue = queue.Queue()
        self._stop = stop or threading.Event()
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
        from ..estimators import create

        self.pipeline = Pipeline(None, tracker=Tracker(self.config.tracking),
                                 min_pose_score=self.settings.min_pose_score, stats_window=self.settings.stats_window)
        self._stats = self.pipeline.stats
        try:
            self.pipeline.stages = self._stages(self.config)
            self.notifier.status("loading model")
            self.pipeline.estimator = create(self.config, store=self.store)
            self.notifier.status("opening source")
            self.pipeline.source = open_source(self.config.source, log=self.log)
            self.log(f"source: {self.pipeline.source.description}")
            self.notifier.status("connecting sinks")
            try:
                self.sinks.open(self.config)
            finally:
                self.pipeline.sinks = self.sinks.sinks
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the sinks in order: GPIO first (outputs safe, its final `falling` events still go out over
        MQTT), then MQTT (`offline` published); then the source (camera released), then the model."""
        if self.pipeline is None:
            return
        pipeline, self.pipeline = self.pipeline, None
        errors = self.sinks.close()
        pipeline.sinks = []
        errors += pipeline.close()
        if errors:
            self.log("errors while closing: " + "; ".join(errors))

    def __enter__(self) -> App:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> LoopStats:
        return self._stats

    @property
    def tracker(self) -> Tracker | None:
        return self.pipeline.tracker if self.pipeline else None

    def run(self, max_frames: int | None = None) -> Ended:
        """Process frames until the input ends, `stop()` is called, `max_frames` are done or a sink fails."""
        pipeline = self.pipeline
        self.notifier.ready(f"running: {pipeline.source.description}")
        next_stats = time.monotonic() + self.settings.stats_interval
        while not self._stop.is_set():
            self._handle_commands()
            for event in pipeline.source.events():
                self.bus.emit(event.kind, **event.fields)
            now = time.monotonic()
            if now >= next_stats:
                self.publish_stats()
                next_stats = now + self.settings.stats_interval
            broken = [sink.name for sink in pipeline.sinks if not sink.healthy()]
            if broken:
                self.log(f"{', '.join(broken)} stopped working (a worker thread died); exiting so the service restarts")
                return Ended.FAILED
            waiting = [s for s in pipeline.sinks if s.wants_frame]
            if self.paused and not pipeline.source.live and not waiting:
                self.notifier.frame_advanced()  # deliberately idle, not stuck
                self._stop.wait(0.1)
                continue
            self._pace()
            started = time.monotonic()
            frame = pipeline.read(timeout=0.5)
            if frame is None:
                if pipeline.source.finished:
                    return Ended.FINISHED
                continue
            self.notifier.frame_advanced()
            if self.paused:
                if waiting:  # served from a fresh frame, which the other sinks do not see
                    poses = pipeline.estimate(frame)
                    for sink in waiting:
                        sink.publish(frame, poses)
                continue
            pipeline.process(frame, {"read": time.monotonic() - started})
            if max_frames is not None and self.stats.frames >= max_frames:
                return Ended.FINISHED
        return Ended.STOPPED

    def _pace(self) -> None:
        """With max_fps set, wait out the rest of the frame period before taking the newest frame."""
        if self.settings.max_fps > 0:
            due = self._last_start + 1.0 / self.settings.max_fps
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        self._last_start = time.monotonic()

    # -- stats, commands ---------------------------------------------------------------------

    def stats_dict(self) -> dict:
        data = self.stats.as_dict()
        data["paused"] = self.paused
        if self.paused:  # no frames are processed: the last window's rate would be a stale figure
            data["fps"] = 0.0
        estimator = self.pipeline.estimator if self.pipeline else None
        data["model"] = getattr(estimator, "model_name", None)
        data["estimator_ms"] = {k: round(v * 1000, 2) for k, v in getattr(estimator, "timings", {}).items()}
        data["source"] = self.pipeline.source.stats() if self.pipeline and self.pipeline.source else {}
        states = {sink.name: sink.state() for sink in (self.pipeline.sinks if self.pipeline else [])}
        data["sinks"] = {name: state for name, state in states.items() if state is not None}
        return data

    def publish_stats(self) -> None:
        data = self.stats_dict()
        latency = data["latency_ms"]["p50"]
        self.notifier.status(
            f"{'paused' if self.paused else 'running'}: {data['fps']} fps, latency p50 {latency} ms, "
            f"{data['people']} people, source {'up' if data['source'].get('connected') else 'DOWN'}"
        )
        for sink in self.pipeline.sinks:
            sink.on_stats(data)

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
            self._set_paused(not self.paused if isinstance(cmd, commands.TogglePause) else isinstance(cmd, commands.Pause))
            self.bus.emit(EventKind.PAUSED if self.paused else EventKind.RESUMED, **reply)
            self.publish_stats()
        elif isinstance(cmd, commands.ReloadConfig):
            self._reload(reply)
        elif isinstance(cmd, commands.SetThresholds):
            self._set_thresholds(cmd, reply)
        else:
            for sink in self.pipeline.sinks:
                sink.on_command(cmd)

    def _set_paused(self, pause: bool) -> None:
        """Pausing leaves nobody detected: every sink hears `pause("paused")` (GPIO outputs go safe, active
        rules report `falling`; MQTT publishes one empty frame)."""
        if pause and not self.paused:
            for sink in self.pipeline.sinks:
                sink.pause("paused")
        elif self.paused and not pause:
            for sink in self.pipeline.sinks:
                sink.resume()
        self.paused = pause

    def _reload(self, reply: dict) -> None:
        """Read the config again and move to it between frames, changing only what changed. A new model and
        source are built before the old ones are let go; a sink whose settings changed is rebuilt (see
        SinkSet.reload), and if anything fails every change is undone and the reply is `command_failed`."""
        if self.load_config is None:
            self.bus.emit(EventKind.COMMAND_FAILED, **reply, error="no config file to reload from")
            return
        try:
            config = self.load_config()
            self.bus.emit(EventKind.RELOADING, **reply)
            changed = self._move_to(config)
        except PiposerError as exc:  # keep running on the old config
            self.bus.emit(EventKind.COMMAND_FAILED, **reply, error=f"reload: {exc}")
            return
        self.log(f"reloaded: {', '.join(changed) or 'nothing changed'}")

    def _move_to(self, config) -> list[str]:
        from ..estimators import create, settings_of

        pipeline, old = self.pipeline, self.config
        # first: a bad poses file changes nothing; a file taught since the last start (console) starts the classifier
        stages = self._stages(config) if config.poses != old.poses or not pipeline.stages else None
        estimator = create(config, store=self.store) if settings_of(config) != settings_of(old) else None
        source = None
        try:
            if config.source != old.source:
                source = open_source(config.source, log=self.log)
            changed = self.sinks.reload(config)
        except BaseException:
            for part in (source, estimator):
                if part is not None:
                    part.close()
            raise
        if estimator is not None:
            pipeline.estimator, estimator = estimator, pipeline.estimator
            estimator.close()
            changed.insert(0, "model")
        if source is not None:
            pipeline.source, source = source, pipeline.source
            source.close()
            self.log(f"source: {pipeline.source.description}")
            changed.insert(0, "source")
        if config.tracking != old.tracking:
            pipeline.tracker = Tracker(config.tracking)
            changed.append("tracking")
        if stages is not None:
            pipeline.stages = stages
            changed.append("poses")
        pipeline.sinks = self.sinks.sinks
        self.config, self.settings = config, config.loop
        self._apply_config_thresholds(config)
        return changed

    def _apply_config_thresholds(self, config) -> None:
        """A reload puts both thresholds back to the config's (a `thresholds` command lasts until then);
        when that changes them, `thresholds` says so, so every display of them stays true."""
        pipeline, estimator = self.pipeline, self.pipeline.estimator
        before = (estimator.keypoint_threshold, pipeline.min_pose_score)
        estimator.set_thresholds(keypoint_threshold=config.model.keypoint_threshold)
        pipeline.min_pose_score = config.loop.min_pose_score
        if (estimator.keypoint_threshold, pipeline.min_pose_score) != before:
            self.bus.emit(EventKind.THRESHOLDS, reason="reload", keypoint_threshold=estimator.keypoint_threshold,
                          pose_threshold=pipeline.min_pose_score)

    def _stages(self, config) -> list:
        """The taught-pose classifier (labels on poses, `pose` events) when there is a poses file."""
        from ..rules.poses import pose_stage

        stage = pose_stage(config.poses, emit=self.bus.emit)
        return [stage] if stage is not None else []

    def _set_thresholds(self, cmd: commands.SetThresholds, reply: dict) -> None:
        """Keypoint threshold: the estimator's; pose threshold: the pipeline's filter."""
        estimator = self.pipeline.estimator
        if cmd.keypoint_threshold is not None:
            estimator.set_thresholds(keypoint_threshold=cmd.keypoint_threshold)
        if cmd.pose_threshold is not None:
            self.pipeline.min_pose_score = cmd.pose_threshold
        self.bus.emit(EventKind.THRESHOLDS, **reply, keypoint_threshold=estimator.keypoint_threshold,
                      pose_threshold=self.pipeline.min_pose_score)

    def request(self, name: str) -> None:
        """The GPIO button (from gpiozero's thread) asks for "toggle", which the loop turns into pause or
        resume from its own state, or for "snapshot"."""
        self.command(commands.TogglePause() if name == "toggle" else commands.COMMANDS[name]())
