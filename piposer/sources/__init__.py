"""Where frames come from: the Pi camera (picamera2), USB cameras and streams (OpenCV), video files, image folders.

`settings` is what the config names, `devices` open and read, `feed` turns a device into the frames the
loop takes. Only the settings are imported eagerly: reading the config must not load OpenCV.
"""

from ..lazy import exports
from .settings import SourceSettings

_EXPORTS = {name: ".feed" for name in (
    "FrameSource", "LiveFeed", "Playback", "SourceEvent", "open_source", "open_video", "read_frame")}
_EXPORTS |= {name: ".devices" for name in (
    "Device", "ImageFiles", "OpenCVDevice", "PiCamera2Device", "device_for", "read_image")}

__all__ = ["SourceSettings", *sorted(_EXPORTS)]
__getattr__, __dir__ = exports(__name__, _EXPORTS)
