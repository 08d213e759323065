"""The one exception type for user mistakes: the CLI prints it as a single line and exits non-zero."""


class PiposerError(Exception):
    """A problem the user can fix (bad config key, missing model, unreadable file).

    The message names the bad thing; the CLI prints it without a traceback.
    """
