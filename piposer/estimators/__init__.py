"""Estimators turn a Frame into a list of Poses; `create` picks the family the model belongs to."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

from ..types import Frame, Layout, Pose


class Estimator(Protocol):
    """Anything that takes a frame and returns the poses in it (source-image pixel coordinates)."""

    layout: Layout
    model_name: str
    model_settings: ModelSettings  # the [model] section it runs with; thresholds may change live
    timings: dict[str, float]  # seconds per stage of the last estimate (preprocess, invoke, decode)

    def estimate(self, frame: Frame) -> list[Pose]: ...

    def close(self) -> None: ...


def default_threads() -> int:
    """Half the CPU cores (2 on a Pi 4 or 5): the rest stay free for capture, MQTT and the OS.

    TFLite's thread pool spins while it waits, so asking for every core stalls inference badly as
    soon as anything else wants the CPU (measured here: 240 ms instead of 12 ms per frame).
    """
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass
class ModelSettings:
    """[model]: which model to run and the settings every family shares."""

    name: str = "posenet"
    num_threads: int = field(default_factory=default_threads)
    keypoint_threshold: float = 0.3
    flip_horizontal: bool = False

    def __post_init__(self):
        if self.num_threads < 1:
            raise ValueError(f"model.num_threads must be >= 1, not {self.num_threads}")
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ValueError(f"model.keypoint_threshold must be within 0..1, not {self.keypoint_threshold}")


def family_of(name: str) -> str:
    """The model family of a manifest name, or of a .tflite path whose file name the manifest knows (default posenet)."""
    from .. import modelstore

    manifest = modelstore.load_manifest()
    if name in manifest:
        return manifest[name].family
    file = name.rsplit("/", 1)[-1]
    for info in manifest.values():
        if any(s.file == file for s in info.sources):
            return info.family
    return "posenet"


def create(config, running_mode: str | None = None) -> Estimator:
    """The estimator for `config.model.name`, built from the config's sections for its family.

    `running_mode` ("image" or "video") overrides BlazePose's, so one-off photos skip tracking.
    """
    family = family_of(config.model.name)
    if family == "blazepose":
        import dataclasses

        from .blazepose import BlazePoseEstimator

        settings = config.blazepose
        if running_mode:
            settings = dataclasses.replace(settings, running_mode=running_mode)
        return BlazePoseEstimator(config.model, settings)
    if family != "posenet":
        from ..errors import PiposerError

        raise PiposerError(f"model.name = {config.model.name!r} is a {family} model, not a pose estimator")
    from .posenet import PoseNetEstimator

    return PoseNetEstimator(config.model, config.posenet)
