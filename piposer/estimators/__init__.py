"""Estimators turn a Frame into a list of Poses; `create` picks the family the model belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..types import Frame, Layout, Pose


class Estimator(Protocol):
    """Anything that takes a frame and returns the poses in it (source-image pixel coordinates)."""

    layout: Layout
    model_name: str

    def estimate(self, frame: Frame) -> list[Pose]: ...

    def close(self) -> None: ...


@dataclass
class ModelSettings:
    """[model]: which model to run and the settings every family shares."""

    name: str = "posenet"
    num_threads: int = 2
    keypoint_threshold: float = 0.3
    flip_horizontal: bool = False

    def __post_init__(self):
        if self.num_threads < 1:
            raise ValueError(f"model.num_threads must be >= 1, not {self.num_threads}")
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ValueError(f"model.keypoint_threshold must be within 0..1, not {self.keypoint_threshold}")
