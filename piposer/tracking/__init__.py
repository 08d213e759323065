"""Tracking: ids that follow people from frame to frame.

Only the settings are imported eagerly: reading the config must not load numpy.
"""

from ..lazy import exports
from .settings import TrackingSettings

_EXPORTS = {name: ".tracker" for name in ("Tracker", "oks_matrix", "sigmas")}

__all__ = ["TrackingSettings", *sorted(_EXPORTS)]
__getattr__, __dir__ = exports(__name__, _EXPORTS)
