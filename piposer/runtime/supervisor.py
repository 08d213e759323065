"""Process supervision: signals and the systemd notifications around the controller.

SIGTERM/SIGINT stop the loop; SIGHUP asks for a reload, queued as a command so it happens between frames
(the controller moves to the new config in place, or keeps the old one if the new one fails). The handlers
only set flags. Environment variables the runtime needs ($STATE_DIRECTORY) are read here, once.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Callable

from .. import commands
from .controller import App, Ended
from .systemd import Notifier


def run(config, *, load_config: Callable[[], object] | None = None, max_frames: int | None = None,
        log: Callable[[str], None] = print, pin_factory=None, store=None) -> int:
    """Run the appliance until SIGTERM/SIGINT or the end of the input; SIGHUP or a `reload` command re-reads
    the config via `load_config`. Returns the process exit code: 0 on a clean stop or the end of the input,
    1 when a sink's worker thread died (systemd's Restart= brings the service back). `store` finds the models."""
    notifier = Notifier()
    stop = threading.Event()
    app = App(config, load_config=load_config, notifier=notifier, log=log, stop=stop, pin_factory=pin_factory,
              state_directory=os.environ.get("STATE_DIRECTORY", ""), store=store)

    def on_stop(signum, _frame):
        log(f"received {signal.Signals(signum).name}, shutting down")
        stop.set()

    def on_hup(_signum, _frame):
        app.command(commands.ReloadConfig())

    handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        with app:
            ended = app.run(max_frames=max_frames)
            log(f"loop {ended} after {app.stats.frames} frames: {json.dumps(app.stats_dict())}")
            notifier.stopping()
        return 1 if ended is Ended.FAILED else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
