"""piposer: a headless pose-estimation appliance for the Raspberry Pi, and a small library.

    from piposer import PoseNet
    with PoseNet() as net:
        poses = net.estimate(bgr_image)

Names are imported on first use, so `import piposer` stays cheap (no numpy, OpenCV or TFLite).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "PoseNet": ".estimators.posenet",
    "BlazePose": ".estimators.blazepose",
    "Hands": ".estimators.hands",
    "MoveNet": ".estimators.movenet",
    "Pose": ".types",
    "Keypoint": ".types",
    "Frame": ".types",
    "Tracker": ".tracking.tracker",
    "open_source": ".sources.feed",
    "Pipeline": ".runtime.pipeline",
    "Sink": ".sinks",
    "Event": ".events",
    "EventKind": ".events",
    "PiposerError": ".errors",
    "ConfigError": ".errors",
    "ModelError": ".errors",
    "SourceError": ".errors",
    "OutputError": ".errors",
}

__all__ = sorted(_EXPORTS)

from .lazy import exports  # noqa: E402

__getattr__, __dir__ = exports(__name__, _EXPORTS)
