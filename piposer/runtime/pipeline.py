"""The one per-frame path every command uses: source -> estimator -> tracker -> sinks.

`Pipeline.process(frame)` estimates, drops weak poses, tracks, runs the pose stages (each turns the
tracked poses into poses for the sinks, e.g. the taught-pose classifier adds labels), hands the result
to every sink and records per-stage timings (stages and sinks under their stable `name`). `Pipeline.run()` drives it over a whole
source (videos, folders); the appliance's controller calls `read` and `process` itself, between
commands.
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Iterable

from ..sinks import Sink
from ..sinks.payloads import percentiles_ms
from ..tracking import Tracker
from ..types import Frame, Pose


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


class Pipeline:
    """An estimator with an optional source, tracker, stages and sinks; closing it closes them all.

    A stage has a `name` and `update(poses, media_time) -> poses`, like the tracker.

    `min_pose_score` is the score a pose needs to be published (weaker ones may only continue a track:
    see tracking/tracker.py); it may be changed at any time. Sinks are closed first (outputs safe, final
    events out), then the
    source (camera released), then the model.
    """

    def __init__(self, estimator, *, source=None, tracker: Tracker | None = None,
                 sinks: Iterable[Sink] = (), min_pose_score: float = 0.0, stats_window: int = 300,
                 stages: Iterable = ()):
        self.estimator = estimator
        self.source = source
        self.tracker = tracker
        self.stages = list(stages)
        self.sinks: list[Sink] = list(sinks)
        self.min_pose_score = min_pose_score
        self.stats = LoopStats(stats_window)

    def estimate(self, frame: Frame) -> list[Pose]:
        """The frame's poses scoring at least `min_pose_score` (untracked, not published)."""
        return self._strong(self.estimator.estimate(frame))

    def _strong(self, poses: list[Pose]) -> list[Pose]:
        return [p for p in poses if p.score >= self.min_pose_score]

    def read(self, timeout: float = 0.5) -> Frame | None:
        return self.source.read(timeout=timeout)

    def process(self, frame: Frame, timings: dict[str, float] | None = None) -> list[Pose]:
        """Estimate, track and publish one frame; returns its tracked poses."""
        timings = {} if timings is None else timings
        t0 = time.monotonic()
        timings["frame_age"] = t0 - frame.timestamp  # how stale the frame is when inference starts
        media_time = self.source.media_time(frame) if self.source is not None else frame.timestamp
        poses = self.estimator.estimate(frame)
        timings["estimate"] = (t := time.monotonic()) - t0
        if self.tracker is None:
            poses = self._strong(poses)
        else:  # the tracker sees the weak poses too: they may continue a track (and it drops the rest)
            poses = self.tracker.update(poses, media_time, min_score=self.min_pose_score,
                                        smooth=not self.estimator.smooths_keypoints)
            timings["track"] = (t1 := time.monotonic()) - t
            t = t1
        for stage in self.stages:
            poses = stage.update(poses, media_time)
            timings[stage.name] = (t1 := time.monotonic()) - t
            t = t1
        for sink in self.sinks:
            sink.publish(frame, poses)
            timings[sink.name] = (t1 := time.monotonic()) - t
            t = t1
        self.stats.record(timings, t - frame.timestamp, t, len(poses))
        return poses

    def run(self, max_frames: int | None = None) -> int:
        """Process the source until it ends (or `max_frames`); returns the number of frames processed."""
        done = 0
        while max_frames is None or done < max_frames:
            frame = self.read(timeout=1.0)
            if frame is None:
                if self.source.finished:
                    break
                continue
            self.process(frame, {})
            done += 1
        return done

    def close(self) -> list[str]:
        """Close sinks, source and estimator, each even if another fails; returns what went wrong."""
        parts = [*self.sinks, self.source, self.estimator]
        self.sinks, self.source = [], None
        errors = []
        for part in parts:
            if part is None:
                continue
            try:
                part.close()
            except Exception as exc:  # one broken part must not keep the others open
                errors.append(f"{getattr(part, 'name', type(part).__name__)}: {exc}")
        return errors

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
