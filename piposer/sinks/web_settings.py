"""[web] settings: where the pose stream listens and who may use it; light to import (no aiohttp)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WebSettings:
    """[web]: the HTTP/WebSocket server (`ws://<pi>:<port>/poses`).

    Off by default. `bind` "127.0.0.1" serves this machine only; "0.0.0.0" every interface. Clients from
    other machines are refused until `trusted_network = true` says the network is yours (there is no
    login yet: anyone who can reach the port sees the poses). `allow_origins` lists the web pages
    (e.g. "http://laptop.local:8000") whose scripts may connect from a browser; "*" allows any page.
    """

    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = 8080
    trusted_network: bool = False
    allow_origins: list[str] = field(default_factory=list)

    def __post_init__(self):
        from ..checks import check_range

        check_range("web.port", self.port, 1, 65535)
        if not self.bind.strip():
            raise ValueError("web.bind must be an address such as 127.0.0.1 or 0.0.0.0")
        bad = [o for o in self.allow_origins if o != "*" and not o.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"web.allow_origins: {bad[0]!r} is not an origin (http://host[:port] or \"*\")")
