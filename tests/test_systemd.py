"""sd_notify over a real AF_UNIX datagram socket, the way systemd listens for it."""

from __future__ import annotations

import os
import socket
import time

import pytest

from piposer.runtime.systemd import Notifier


class NotifySocket:
    """A bound datagram socket standing in for systemd's $NOTIFY_SOCKET; records what it receives."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.received: list[str] = []

    def env(self, watchdog: float | None = None) -> dict:
        env = {"NOTIFY_SOCKET": self.path}
        if watchdog:
            env["WATCHDOG_USEC"] = str(int(watchdog * 1e6))
        return env

    def drain(self, timeout: float = 0.0) -> list[str]:
        """Messages received within `timeout` seconds (all of them already queued, at least)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                got.append(self.sock.recv(4096).decode())
            except (socket.timeout, BlockingIOError):
                break
        self.received += got
        return got

    def wait_for(self, field: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.drain(0.05):
                if field in message.split("\n"):
                    return message
        raise AssertionError(f"no {field} within {timeout} s; got {self.received[-5:]}")

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    s = NotifySocket(tmp_path / "notify")
    yield s
    s.close()


def test_ready_status_and_stopping_reach_the_socket(notify):
    n = Notifier(notify.env())
    assert n.enabled
    assert n.ready("running: camera")
    assert n.status("3 people")
    assert n.stopping()
    assert notify.drain(0.1) == ["READY=1\nSTATUS=running: camera", "STATUS=3 people", "STOPPING=1"]


def test_abstract_socket_address(tmp_path):
    name = f"piposer-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        sock.settimeout(1)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_watchdog_is_fed_at_half_the_timeout(notify):
    n = Notifier(notify.env(watchdog=2.0))
    assert n.watchdog_timeout == 2.0
    sent = [n.frame_advanced(now=t) for t in (100.0, 100.5, 100.99, 101.0, 101.2, 102.1)]
    assert sent == [True, False, False, True, False, True]
    assert notify.drain(0.1) == ["WATCHDOG=1"] * 3


def test_watchdog_for_another_pid_or_outside_systemd_is_off(notify):
    other = Notifier({**notify.env(watchdog=1.0), "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_timeout is None and not other.frame_advanced()
    outside = Notifier({})
    assert not outside.enabled and not outside.ready() and not outside.frame_advanced()
    gone = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify"})
    assert not gone.ready()  # a vanished socket is not an error for the appliance
    assert notify.drain(0.05) == []
