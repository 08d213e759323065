"""Talk to systemd's service manager (sd_notify) with the stdlib socket module alone.

Outside systemd ($NOTIFY_SOCKET unset) every call is a cheap no-op, so the loop can call it freely.
"""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    """Sends READY/WATCHDOG/STATUS/STOPPING datagrams to $NOTIFY_SOCKET (a path or an @abstract name)."""

    def __init__(self, environ: dict | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: seconds after which systemd kills us without a WATCHDOG=1; None when no watchdog is set
        self.watchdog_timeout = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; False when not under systemd or the send failed."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode(), self._address)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def frame_advanced(self, now: float | None = None) -> bool:
        """Feed the watchdog, at most twice per timeout: call it only when a new frame came in."""
        if self.watchdog_timeout is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_timeout / 2:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")
