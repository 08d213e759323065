"""piposer's exceptions: one small hierarchy so library users can catch what they mean.

Every one is a problem the user can fix; the message names the bad thing (config key, file, payload)
and the CLI prints it as a single line and exits non-zero.
"""


class PiposerError(Exception):
    """A problem the user can fix (bad config key, missing model, unreadable file)."""


class ConfigError(PiposerError):
    """A config file or setting that cannot be used (the message names the file or key)."""


class ModelError(PiposerError):
    """A model that cannot be found, fetched, verified or loaded."""


class SourceError(PiposerError):
    """A camera, stream, video, image or folder that cannot be opened or read."""


class OutputError(PiposerError):
    """An output (file, GPIO pin, broker) that cannot be written or opened."""
