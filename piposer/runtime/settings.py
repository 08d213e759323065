"""[loop] settings; light to import (the config loader needs them, not the runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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

    def snapshot_path(self, state_directory: str = "") -> Path:
        return snapshot_folder(self.snapshot_dir, state_directory)


def snapshot_folder(snapshot_dir: str, state_directory: str = "") -> Path:
    """`[loop] snapshot_dir`, or $STATE_DIRECTORY/snapshots under systemd (its first entry), else ./snapshots."""
    if snapshot_dir:
        return Path(snapshot_dir).expanduser()
    state = state_directory.split(":")[0]
    return Path(state) / "snapshots" if state else Path("snapshots")
