"""[web] settings: where the web server listens, what it serves and who may use it; light to import (no aiohttp)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass
class WebSettings:
    """[web]: the HTTP/WebSocket server: the console (`http://<pi>:<port>/`) and the pose stream (`/poses`).

    Off unless enabled (the installed service's config enables it). `bind` "127.0.0.1" serves this machine
    only; "0.0.0.0" every interface. Requests from other machines need a login with the password whose
    hash is in `password_file` (`piposer web passwd` writes it; relative names are relative to the
    config file's folder, like tls_cert and tls_key); without one they are refused. The
    read-only pose stream alone may be opened to other machines without a login by `trusted_network =
    true` (a sketch on a laptop; no images go out on it). `allow_origins` lists the web pages (e.g.
    "http://laptop.local:8000") whose scripts may use the stream from a browser; "*" allows any page.
    `tls_cert`/`tls_key` (PEM files) serve https/wss instead. The live view is encoded at most
    `live_fps` times a second, at most `live_width` pixels wide, and only while someone watches.
    """

    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 8080
    console: bool = True
    password_file: str = ""
    trusted_network: bool = False
    allow_origins: list[str] = field(default_factory=list)
    tls_cert: str = ""
    tls_key: str = ""
    live_fps: float = 5.0
    live_width: int = 640

    def __post_init__(self):
        from ..checks import check_range

        check_range("web.port", self.port, 1, 65535)
        check_range("web.live_fps", self.live_fps, 0, 30, lo_open=True)
        check_range("web.live_width", self.live_width, 160, 4096)
        if not self.bind.strip():
            raise ValueError("web.bind must be an address such as 127.0.0.1 or 0.0.0.0")
        bad = [o for o in self.allow_origins if o != "*" and not o.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"web.allow_origins: {bad[0]!r} is not an origin (http://host[:port] or \"*\")")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("web.tls_cert and web.tls_key go together (a PEM certificate and its key)")

    def resolve(self, config_file) -> None:
        """Make relative file names absolute: relative to the config file's folder (as the poses file)."""
        from pathlib import Path

        folder = Path(config_file).resolve().parent if config_file else Path.cwd()
        for key in ("password_file", "tls_cert", "tls_key"):
            if getattr(self, key):
                setattr(self, key, str(folder / Path(getattr(self, key)).expanduser()))

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def local_only(self) -> bool:
        """True when only this machine can reach the server (a loopback bind address)."""
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            return self.bind == "localhost"
