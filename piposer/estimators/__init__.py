"""Estimators turn a Frame into a list of Poses; `create` picks the family the model belongs to."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Protocol

from ..checks import check_range
from ..errors import ConfigError, SourceError
from .settings import (  # noqa: F401 - re-exported
    BlazePoseSettings, HandsSettings, ModelSettings, MoveNetSettings, PoseNetSettings)

if TYPE_CHECKING:  # numpy and the pose types are imported on first use: the config loader needs neither
    import numpy as np

    from ..modelstore import ModelStore
    from ..types import Frame, Layout, Pose

class Estimator(Protocol):
    """Anything that takes a frame and returns the poses in it (source-image pixel coordinates)."""

    layout: Layout
    model_name: str
    model_settings: ModelSettings  # the [model] section it runs with; thresholds may change live
    timings: dict[str, float]  # seconds per stage of the last estimate (preprocess, invoke, decode)
    smooths_keypoints: bool  # its poses come out smoothed already (the tracker then leaves them be)

    def estimate(self, frame: Frame) -> list[Pose]: ...

    def close(self) -> None: ...


class BaseEstimator:
    """What every estimator shares: a numpy image or a Frame in, thresholds changed at run time, `with`.

    Subclasses implement `_estimate(frame)` and `close()`, and own their `model_settings` (a copy, so
    changing a threshold here never changes anybody else's settings).
    """

    model_settings: ModelSettings
    smooths_keypoints = False

    def estimate(self, image: np.ndarray | Frame) -> list[Pose]:
        """The poses in a BGR image (HxWx3 uint8, as OpenCV reads it) or a Frame, in its pixel coordinates."""
        from ..types import Frame

        return self._estimate(image if isinstance(image, Frame) else as_frame(image))

    def _estimate(self, frame: Frame) -> list[Pose]:
        raise NotImplementedError

    @property
    def keypoint_threshold(self) -> float:
        """Keypoints scoring below this are reported with `detected = False`."""
        return self.model_settings.keypoint_threshold

    def set_thresholds(self, *, keypoint_threshold: float | None = None) -> None:
        """Change thresholds between frames; a value out of range raises ConfigError and changes nothing."""
        if keypoint_threshold is not None:
            try:
                check_range("keypoint_threshold", keypoint_threshold, 0.0, 1.0)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self.model_settings.keypoint_threshold = float(keypoint_threshold)

    def close(self) -> None:
        """Release the model."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def as_frame(image) -> Frame:
    """A bare BGR image as a Frame stamped now (what library callers pass to `estimate`)."""
    import numpy as np

    from ..types import Frame

    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 \
            or 0 in image.shape:
        shape = getattr(image, "shape", None)
        raise SourceError(f"an image must be an HxWx3 uint8 BGR array, not {type(image).__name__} {shape or ''}".strip())
    return Frame(image, 0, time.monotonic(), time.time())


def settings_from(options: dict, *defaults):
    """Copies of the settings dataclasses `defaults` with `options` (keyword arguments) applied to whichever
    has the field; an unknown keyword or a bad value is a ConfigError naming it."""
    remaining = dict(options)
    result = []
    for settings in defaults:
        names = {f.name for f in dataclasses.fields(settings)}
        mine = {k: remaining.pop(k) for k in list(remaining) if k in names}
        try:
            result.append(dataclasses.replace(settings, **mine))
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
    if remaining:
        raise ConfigError(f"unknown setting {', '.join(sorted(remaining))!s}")
    return result


def settings_of(config) -> tuple:
    """Every config section an estimator is built from (the ones whose dataclass lives in estimators/settings.py):
    a reload builds a new estimator only when these change."""
    from . import settings

    return tuple(value for value in vars(config).values() if type(value).__module__ == settings.__name__)


# model family -> (module, estimator class); each is built from [model] and the config section named after the family
FAMILIES = {
    "posenet": ("posenet", "PoseNetEstimator"),
    "movenet": ("movenet", "MoveNetEstimator"),
    "blazepose": ("blazepose", "BlazePoseEstimator"),
    "hands": ("hands", "HandsEstimator"),
}


def create(config, running_mode: str | None = None, store: ModelStore | None = None) -> Estimator:
    """The estimator for `config.model.name`, built from the config's sections for its family, its files
    found by `store` (default: the store the environment describes).

    `running_mode` ("image" or "video") overrides the family's, so one-off photos skip tracking (and PoseNet's
    second pass forgets the last photo).
    """
    import importlib

    from ..modelstore import ModelStore

    store = store or ModelStore.from_environment()
    family = store.family_of(config.model.name)
    if family not in FAMILIES:
        raise ConfigError(f"model.name = {config.model.name!r} is a {family} model, not a pose estimator")
    module, name = FAMILIES[family]
    settings = getattr(config, family)
    if running_mode and hasattr(settings, "running_mode"):
        settings = dataclasses.replace(settings, running_mode=running_mode)
    estimator = getattr(importlib.import_module(f".{module}", __name__), name)
    if family == "blazepose" and settings.person_detector != "blazepose":  # top-down: another model proposes people
        from .topdown import build_proposer

        return estimator(config.model, settings, store, build_proposer(config, settings.person_detector, store))
    if family == "hands" and settings.bodies:  # each hand attached to the person whose wrist it is on
        from .bodyhands import build

        if store.family_of(settings.bodies) not in set(FAMILIES) - {"hands"}:
            raise ConfigError(f"hands.bodies = {settings.bodies!r} is not a body pose model (e.g. movenet-multipose)")
        return build(config, estimator(config.model, settings, store), store)
    return estimator(config.model, settings, store)
