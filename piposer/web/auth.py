"""Who may use the web server: the password file, login sessions, CSRF tokens and login rate limiting.

Requests from this machine (loopback) need no password; every other one needs a session made by logging
in with the password whose scrypt hash is in `[web] password_file`. Each session carries its own CSRF
token, which every state-changing request must echo in the `X-CSRF-Token` header. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PiposerError

SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # 16 MiB and about 0.1 s on a Pi 4: cheap to check once, slow to guess
COOKIE = "piposer_session"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` for the password file (a fresh random salt each time)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, line: str) -> bool:
    """Whether `password` matches a `hash_password` line (compared in constant time)."""
    try:
        kind, n, r, p, salt, digest = line.strip().split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected), maxmem=2**26)
    except ValueError:  # a damaged line never matches
        return False
    return hmac.compare_digest(got, expected)


def read_password_file(path: Path) -> str:
    """The hash line in the password file; a PiposerError naming the file if it is missing or not one."""
    try:
        line = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PiposerError(f"web.password_file: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PiposerError(f"web.password_file: {path} is not a password hash (run `piposer web passwd`)") from None
    if not line.startswith("scrypt$") or line.count("$") != 5:
        raise PiposerError(f"web.password_file: {path} is not a password hash (run `piposer web passwd`)")
    return line


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


@dataclass
class Session:
    """One logged-in browser: its CSRF token and when it was last used."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    used: float = field(default_factory=time.monotonic)


class Sessions:
    """Session tokens (random, kept in memory only: a restart logs everyone out) with an idle timeout."""

    def __init__(self, idle_timeout: float = 12 * 3600, limit: int = 64):
        self.idle_timeout, self.limit = idle_timeout, limit
        self._sessions: dict[str, Session] = {}

    def create(self) -> tuple[str, Session]:
        if len(self._sessions) >= self.limit:  # the least recently used one goes
            del self._sessions[min(self._sessions, key=lambda t: self._sessions[t].used)]
        token = secrets.token_urlsafe(32)
        session = self._sessions[token] = Session()
        return token, session

    def get(self, token: str | None) -> Session | None:
        session = self._sessions.get(token or "")
        now = time.monotonic()
        if session is None or now - session.used > self.idle_timeout:
            self._sessions.pop(token or "", None)
            return None
        session.used = now
        return session

    def end(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)


class LoginLimiter:
    """At most `attempts` failed logins per address per `window` seconds (and 4x that from everyone)."""

    def __init__(self, attempts: int = 5, window: float = 60.0):
        self.attempts, self.window = attempts, window
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again (0: now)."""
        now = time.monotonic()
        mine = self._wait(self._failures.get(address, deque()), self.attempts, now)
        if not self._failures.get(address, True):
            del self._failures[address]  # addresses with no recent failure are forgotten
        return max(mine, self._wait(self._all, 4 * self.attempts, now))

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self._failures.setdefault(address, deque()).append(now)
        self._all.append(now)

    def _wait(self, failures: deque[float], attempts: int, now: float) -> float:
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return self.window - (now - failures[0]) if len(failures) >= attempts else 0.0
