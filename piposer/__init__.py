"""piposer: a headless pose-estimation appliance for the Raspberry Pi, and a small library.

    from piposer import PoseNet
    with PoseNet() as net:
        poses = net.estimate(bgr_image)

Names are imported on first use, so `import piposer` stays cheap (no numpy, OpenCV or TFLite).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "PoseNet": "piposer.estimators.posenet",
    "BlazePose": "piposer.estimators.blazepose",
    "Hands": "piposer.estimators.hands",
    "MoveNet": "piposer.estimators.movenet",
    "Pose": "piposer.types",
    "Keypoint": "piposer.types",
    "Frame": "piposer.types",
    "Tracker": "piposer.tracking.tracker",
    "open_source": "piposer.sources.feed",
    "Pipeline": "piposer.runtime.pipeline",
    "Sink": "piposer.sinks",
    "Event": "piposer.events",
    "EventKind": "piposer.events",
    "PiposerError": "piposer.errors",
    "ConfigError": "piposer.errors",
    "ModelError": "piposer.errors",
    "SourceError": "piposer.errors",
    "OutputError": "piposer.errors",
}

__all__ = sorted(_EXPORTS)

from .lazy import exports  # noqa: E402

__getattr__, __dir__ = exports(__name__, _EXPORTS)
