"""The web server: the console (piposer/web/console.py) and the WebSocket pose stream
(`ws://<pi>:8080/poses`) for browsers: p5.js/ml5 sketches, dashboards.

An aiohttp server runs in a thread of its own with its own event loop, so a slow or stalled browser can
never hold up the frame loop; the frame loop only hands over references and encoded text. `publish` encodes each frame once per shape that someone is watching and
hands it over; every client keeps only the newest unsent frame (a slow client skips frames, it never
queues them). Shapes: `?format=piposer` (default: the MQTT `poses` payload, with track ids) and
`?format=ml5` (ml5.js poseNet's result list, so an existing sketch only changes its data source).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aiohttp import WSMsgType, web

from ..errors import OutputError
from ..events import Event
from ..types import Frame, Pose
from ..web.console import Console
from . import Sink
from .payloads import poses_payload
from .web_settings import WebSettings

FORMATS = ("piposer", "ml5")
WEB = Path(__file__).resolve().parent.parent / "web"  # static files: examples, and vendor/ (p5.js, from make)


def ml5_payload(poses: list[Pose], min_score: float = 0.0) -> list[dict]:
    """ml5.js poseNet's results: per person `pose` (score, keypoints with part/score/position, and each part
    by name with x/y/confidence) and `skeleton` (pairs of keypoints the layout links, both above min_score)."""
    results = []
    for pose in poses:
        keypoints = [{"part": k.name, "score": round(k.score, 4), "position": {"x": round(k.x, 1), "y": round(k.y, 1)}}
                     for k in pose.keypoints]
        body = {"score": round(pose.score, 4), "keypoints": keypoints}
        body.update({k.name: {"x": round(k.x, 1), "y": round(k.y, 1), "confidence": round(k.score, 4)}
                     for k in pose.keypoints})
        skeleton = [[keypoints[a], keypoints[b]] for a, b in pose.layout.links
                    if pose.keypoints[a].score >= min_score and pose.keypoints[b].score >= min_score]
        result = {"pose": body, "skeleton": skeleton}
        if pose.track_id is not None:
            result["id"] = pose.track_id
        results.append(result)
    return results


class Client:
    """One connected browser: its shape and the newest frame it has not been sent yet."""

    def __init__(self, ws: web.WebSocketResponse, shape: str):
        self.ws, self.shape = ws, shape
        self.newest: str | None = None
        self.ready = asyncio.Event()


@dataclass
class WebSlice:
    """What the web server is built from: [web], and what the console shows of the rest of the config.
    Only `web`, `model_name`, `config_path` and `mirrored` need a new server; the rest changes in place."""

    web: WebSettings
    model_name: str = "posenet"
    keypoint_threshold: float = 0.3
    rules: list = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    config_path: Path | None = None
    mirrored: bool = False
    poses_file: str = ""

    def server(self) -> tuple:
        return self.web, self.model_name, self.config_path, self.mirrored


class WebSocketSink(Sink):
    """Serves the console and the pose stream on [web] bind:port from its own thread until closed.

    `on_request` takes the console's commands (the controller's `command`); `stats` returns the loop's
    stats (called on the frame loop's thread, once a second while a console is open)."""

    name = "WebSocketSink"

    def __init__(self, settings: WebSlice, *, on_request: Callable = lambda command: None,
                 stats: Callable[[], dict] | None = None, log=print):
        self.slice, self.settings, self.log = settings, settings.web, log
        self.model_name, self.threshold = settings.model_name, settings.keypoint_threshold
        self.console = Console(settings.web, on_request=on_request, config_path=settings.config_path,
                               rules=settings.rules, outputs=settings.outputs, mirrored=settings.mirrored, stats=stats,
                               poses_file=settings.poses_file)
        self.clients: set[Client] = set()
        self._clients_lock = threading.Lock()  # the frame loop reads the set, the server thread changes it
        self._ssl = self._tls()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(started, failure), name="piposer-web", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            raise OutputError(f"web: cannot listen on {self.settings.bind}:{self.settings.port}: "
                              f"{getattr(failure[0], 'strerror', None) or failure[0]}") from None

    # -- the frame loop's side ------------------------------------------------------------------

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        self.console.offer(frame, poses)
        with self._clients_lock:
            shapes = {client.shape for client in self.clients}
        if not shapes:
            return  # nobody watching: nothing encoded
        encoded = {}
        if "piposer" in shapes:
            encoded["piposer"] = json.dumps(poses_payload(frame, poses, self.model_name), separators=(",", ":"))
        if "ml5" in shapes:
            encoded["ml5"] = json.dumps(ml5_payload(poses, self.threshold), separators=(",", ":"))
        self._loop.call_soon_threadsafe(self._offer, encoded)

    def on_event(self, event: Event) -> None:
        self.console.on_event(event)

    def on_stats(self, stats: dict) -> None:
        self.console.on_stats(stats)

    def healthy(self) -> bool:
        return self._thread.is_alive()

    def can_reconfigure(self, settings) -> bool:
        return isinstance(settings, WebSlice) and settings.server() == self.slice.server()

    def reconfigure(self, settings: WebSlice) -> None:
        """New rules (zones), keypoint threshold and poses file, on the running server: sessions and viewers stay."""
        self.slice, self.threshold = settings, settings.keypoint_threshold
        self.console.use_rules(settings.rules, settings.outputs)
        self.console.poses_file = settings.poses_file

    def close(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    # -- the server thread ----------------------------------------------------------------------

    def _serve(self, started: threading.Event, failure: list) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except OSError as exc:
            failure.append(exc)
            started.set()
            self._loop.close()
            return
        started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self.console.gate], client_max_size=256 * 1024)
        self.console.routes(app)
        app.router.add_get("/poses", self._poses)
        app.router.add_get("/examples/p5", self._p5_example)
        app.router.add_get("/examples/p5/", self._p5_example)
        app.router.add_static("/examples/", WEB / "examples")
        if (WEB / "vendor").is_dir():
            app.router.add_static("/vendor/", WEB / "vendor")
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bind, self.settings.port, ssl_context=self._ssl)
        await site.start()
        self.log(f"web console: {self.settings.scheme}://{self.settings.bind}:{self.settings.port}/"
                 + ("" if self.settings.local_only or self.settings.password_file
                    else " (other machines are refused until [web] password_file is set)"))

    def _tls(self) -> ssl.SSLContext | None:
        """The server's TLS context from [web] tls_cert/tls_key (None: plain http)."""
        if not self.settings.tls_cert:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        except OSError as exc:  # ssl.SSLError is one
            raise OutputError(f"web: cannot use tls_cert {self.settings.tls_cert} with tls_key "
                              f"{self.settings.tls_key}: {exc.strerror or exc}") from None
        return context

    async def _stop(self) -> None:
        for client in list(self.clients):
            await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _offer(self, encoded: dict[str, str]) -> None:
        for client in self.clients:
            client.newest = encoded.get(client.shape, client.newest)
            client.ready.set()

    def _refusal(self, request: web.Request) -> str | None:
        """Why a browser page may not use the stream (who may use it at all is the console's gate)."""
        origin = request.headers.get("Origin")
        allowed = self.settings.allow_origins
        if origin and "*" not in allowed and origin not in allowed and origin != f"http://{request.host}":
            return f"origin {origin} is not in [web] allow_origins"
        return None

    async def _p5_example(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "examples" / "p5" / "index.html")

    async def _poses(self, request: web.Request) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal:
            return web.Response(status=403, text=refusal + "\n")
        shape = request.query.get("format", "piposer")
        if shape not in FORMATS:
            return web.Response(status=400, text=f"format must be one of {', '.join(FORMATS)}, not {shape!r}\n")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        client = Client(ws, shape)
        with self._clients_lock:
            self.clients.add(client)
        sender = asyncio.ensure_future(self._send(client))
        try:
            async for message in ws:  # nothing is expected from the client; this notices it leaving
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            with self._clients_lock:
                self.clients.discard(client)
            sender.cancel()
        return ws

    async def _send(self, client: Client) -> None:
        while not client.ws.closed:
            await client.ready.wait()
            client.ready.clear()
            text, client.newest = client.newest, None
            if text is not None:
                await client.ws.send_str(text)
