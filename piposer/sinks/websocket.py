"""The WebSocket pose stream (`ws://<pi>:8080/poses`) for browsers: p5.js/ml5 sketches, dashboards.

An aiohttp server runs in a thread of its own with its own event loop, so a slow or stalled browser can
never hold up the frame loop. `publish` encodes each frame once per shape that someone is watching and
hands it over; every client keeps only the newest unsent frame (a slow client skips frames, it never
queues them). Shapes: `?format=piposer` (default: the MQTT `poses` payload, with track ids) and
`?format=ml5` (ml5.js poseNet's result list, so an existing sketch only changes its data source).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import threading
from pathlib import Path

from aiohttp import WSMsgType, web

from ..errors import OutputError
from ..types import Frame, Pose
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


class WebSocketSink(Sink):
    """Serves the pose stream on [web] bind:port from its own thread until closed."""

    name = "WebSocketSink"

    def __init__(self, settings: WebSettings, model_name: str, keypoint_threshold: float = 0.3, log=print):
        self.settings, self.model_name, self.threshold, self.log = settings, model_name, keypoint_threshold, log
        self.clients: set[Client] = set()
        self._clients_lock = threading.Lock()  # the frame loop reads the set, the server thread changes it
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(started, failure), name="piposer-web", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join()
            raise OutputError(f"web: cannot listen on {settings.bind}:{settings.port}: "
                              f"{getattr(failure[0], 'strerror', None) or failure[0]}") from None

    # -- the frame loop's side ------------------------------------------------------------------

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
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

    def healthy(self) -> bool:
        return self._thread.is_alive()

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
        app = web.Application()
        app.router.add_get("/poses", self._poses)
        app.router.add_get("/examples/p5", self._p5_example)
        app.router.add_get("/examples/p5/", self._p5_example)
        app.router.add_static("/examples/", WEB / "examples")
        if (WEB / "vendor").is_dir():
            app.router.add_static("/vendor/", WEB / "vendor")
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.bind, self.settings.port)
        await site.start()

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
        peer = request.remote or ""
        try:
            local = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            local = False
        if not local and not self.settings.trusted_network:
            return f"clients from other machines ({peer}) need [web] trusted_network = true"
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
