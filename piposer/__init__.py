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
    "Pose": "piposer.types",
    "Keypoint": "piposer.types",
    "Frame": "piposer.types",
    "Tracker": "piposer.tracking",
    "open_source": "piposer.sources",
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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'piposer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_EXPORTS])
