"""Process supervision: signals, reloads with fallback, and the systemd notifications around the controller.

SIGTERM/SIGINT stop the loop, SIGHUP asks for a reload (queued as a command, so it happens between
frames); the handlers only set flags. Every App shares one stop event, so a signal that arrives while one
config closes and the next opens is never lost.
"""

from __future__ import annotations

import json
import signal
import threading
from typing import Callable

from .. import commands
from ..errors import PiposerError
from ..events import EventKind
from .systemd import Notifier
from .controller import App


def run(config, *, load_config: Callable[[], object] | None = None, max_frames: int | None = None,
        log: Callable[[str], None] = print, pin_factory=None) -> int:
    """Run the appliance until SIGTERM/SIGINT or the end of the input; SIGHUP or a `reload` command re-reads
    the config via `load_config`. A reloaded config that cannot be opened (missing model or password file,
    busy camera) is reported as `command_failed` and the previous one is reopened. Returns the process exit
    code (0 on a clean stop)."""
    notifier = Notifier()
    stop = threading.Event()  # shared by every App, so a SIGTERM while one closes and the next opens is kept
    current: App | None = None

    def on_stop(signum, _frame):
        log(f"received {signal.Signals(signum).name}, shutting down")
        stop.set()

    def on_hup(_signum, _frame):
        if current is not None:
            current.command(commands.ReloadConfig())

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    fallback, failed = None, None  # the config before a reload, and the reload's failure to report
    failed_reply: dict = {}  # the reload command's reply fields, echoed in its failure
    try:
        while not stop.is_set():
            current = App(config, load_config=load_config, notifier=notifier, log=log, stop=stop, pin_factory=pin_factory)
            try:
                current.open()
            except PiposerError as exc:
                if fallback is None:
                    raise
                log(f"reloaded config cannot be opened ({exc}); going back to the previous one")
                config, fallback, failed = fallback, None, {**failed_reply, "error": f"reload: {exc}"}
                continue
            try:
                if failed is not None:
                    current.bus.emit(EventKind.COMMAND_FAILED, **failed)
                    failed = None
                reason = current.run(max_frames=max_frames)
                log(f"loop {reason} after {current.stats.frames} frames: {json.dumps(current.stats_dict())}")
                (notifier.reloading if reason == "reload" else notifier.stopping)()
            finally:
                current.close()
            if reason != "reload":
                return 0
            fallback, failed_reply, config = config, current.reload_reply, current.next_config
        notifier.stopping()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
