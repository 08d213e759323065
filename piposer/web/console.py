"""The web console's HTTP side: login, the page, its state (stats, events, zones), the live view
(MJPEG), snapshots, commands and the zone editor's save; and the gate every request passes.

The gate: a request from this machine (loopback) gets a session without a password; any other needs one
made by logging in (`/login`), except the read-only pose stream when `[web] trusted_network` opens it.
Every POST must carry its session's CSRF token in `X-CSRF-Token`; login attempts are rate limited.
Commands go to the controller exactly as MQTT `set` payloads do (piposer/commands.py validates both).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from aiohttp import web

from ..commands import CommandError, ReloadConfig, parse_command
from ..errors import PiposerError
from ..events import Edge, Event, EventKind
from ..rules.library import record_pose
from ..rules.settings import KEYPOINT_NAMES
from ..sinks.web_settings import WebSettings
from . import zones as zone_file
from .auth import COOKIE, LoginLimiter, Sessions, is_loopback, read_password_file, verify_password
from .live import LiveView, Scene, render

STATIC = Path(__file__).resolve().parent / "console"
BOUNDARY = "piposer-frame"
SESSION = web.RequestKey("session", object)  # the request's Session, set by the gate
OPEN = {"/login", "/console/login.css"}  # served to anyone: the login page and its style


class Console:
    """The console's state (fed by the sink from the frame loop) and its routes (run on the server loop)."""

    def __init__(self, settings: WebSettings, *, on_request: Callable, config_path: Path | None,
                 rules: list, outputs: list[str], mirrored: bool = False, stats: Callable[[], dict] | None = None,
                 poses_file: str = ""):
        self.settings, self.on_request, self.config_path = settings, on_request, config_path
        self.poses_file = poses_file
        self.mirrored, self.stats_source = mirrored, stats
        self.sessions = Sessions()
        self.limiter = LoginLimiter()
        self.events: deque[dict] = deque(maxlen=50)
        self.event_count = 0
        self.stats: dict = {}
        self.live: LiveView | None = None  # made on the server's loop (see `routes`)
        self.watched_until = 0.0  # a console page polled recently: keep stats fresh until then
        self._active: dict[str, set] = {}  # rule -> people it is active for
        self._lock = threading.Lock()  # events and active rules: written by the loop, read by the server
        self.use_rules(rules, outputs)

    # -- the frame loop's side -------------------------------------------------------------------

    def use_rules(self, rules: list, outputs: list[str]) -> None:
        self.rules, self.outputs = rules, outputs
        self.zones = zone_file.zones_of(rules)
        self.outlines = [(z.rule, z.outline()) for z in self.zones]

    def offer(self, frame, poses) -> None:
        if self.live is not None:
            self.live.offer(Scene(frame, poses, self.outlines, self.active()))
        now = time.monotonic()
        if self.stats_source is not None and now < self.watched_until and now - self.stats.get("_at", 0) >= 1.0:
            self.on_stats(self.stats_source())  # a console is open: stats once a second, not every stats_interval

    def on_stats(self, stats: dict) -> None:
        self.stats = {**stats, "_at": time.monotonic()}

    def on_event(self, event: Event) -> None:
        with self._lock:
            self.event_count += 1
            self.events.append({"n": self.event_count, "time": time.time(), "kind": str(event.kind),
                                **{k: v for k, v in event.fields.items()}})
            if event.kind == EventKind.RULE:
                people = self._active.setdefault(event.fields.get("rule"), set())
                (people.add if event.fields.get("edge") == Edge.RISING else people.discard)(event.fields.get("person"))

    def active(self) -> set[str]:
        with self._lock:
            return {rule for rule, people in self._active.items() if people}

    # -- the server's side ----------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The console's routes (none with `[web] console = false`: then only the gate is used)."""
        self.live = LiveView(asyncio.get_running_loop(), self.settings.live_fps, self.settings.live_width, self.mirrored)
        if not self.settings.console:
            return
        app.router.add_get("/", self._page)
        app.router.add_get("/login", self._login_page)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/live.mjpg", self._mjpeg)
        app.router.add_get("/snapshot.jpg", self._snapshot)
        app.router.add_post("/api/command", self._command)
        app.router.add_post("/api/zones", self._save_zones)
        app.router.add_post("/api/poses", self._teach)
        app.router.add_static("/console/", STATIC)

    @web.middleware
    async def gate(self, request: web.Request, handler):
        """Sessions, logins and CSRF for every request (see the module's docstring)."""
        if request.path in OPEN:
            return await handler(request)
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token)
        fresh = None
        if session is None and is_loopback(request.remote):
            fresh, session = self.sessions.create()
        if session is None:
            if request.path == "/poses" and self.settings.trusted_network:
                return await handler(request)
            if request.method == "GET" and request.path == "/":
                return _see_other("/login")
            return _refuse(401, "log in first (POST /login)")
        if request.method == "POST" and not hmac.compare_digest(request.headers.get("X-CSRF-Token", ""), session.csrf):
            return _refuse(403, "missing or wrong CSRF token (X-CSRF-Token header)")
        request[SESSION] = session
        response = await handler(request)
        if fresh is not None:
            self._set_cookie(response, fresh)
        return response

    def _set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=bool(self.settings.tls_cert),
                            path="/")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=_NO_STORE)

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "login.html", headers=_NO_STORE)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        address = request.remote or "?"
        wait = self.limiter.retry_after(address)
        if wait > 0:
            return _refuse(429, f"too many wrong passwords; try again in {wait:.0f} s",
                           {"Retry-After": str(max(1, round(wait)))})
        origin = request.headers.get("Origin")
        if origin and origin != f"{self.settings.scheme}://{request.host}":
            return _refuse(403, f"login from another site ({origin}) refused")
        if not self.settings.password_file:
            return _refuse(503, "no password is set: set [web] password_file and run `piposer web passwd`")
        try:
            line = read_password_file(Path(self.settings.password_file))
        except PiposerError as exc:
            return _refuse(503, str(exc))
        password = (await request.post()).get("password", "")
        ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, str(password), line)
        if not ok:
            self.limiter.failed(address)
            return _refuse(401, "wrong password")
        token, _ = self.sessions.create()
        response = _see_other("/")
        self._set_cookie(response, token)
        return response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.end(request.cookies.get(COOKIE))
        response = _see_other("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    async def _state(self, request: web.Request) -> web.StreamResponse:
        self.watched_until = time.monotonic() + 5
        since = int(request.query.get("since", "0")) if request.query.get("since", "0").isdigit() else 0
        with self._lock:
            events = [e for e in self.events if e["n"] > since]
        stats = {k: v for k, v in self.stats.items() if k != "_at"}
        body = {"csrf": request[SESSION].csrf, "stats": stats, "events": events,
                "zones": [z.as_dict() for z in self.zones], "active": sorted(self.active()),
                "rules": [r.name for r in self.rules], "outputs": self.outputs, "keypoints": sorted(KEYPOINT_NAMES),
                "editable": self.config_path is not None, "live_fps": self.settings.live_fps}
        return web.json_response(body, headers=_NO_STORE, dumps=lambda o: json.dumps(o, default=str))

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                               **_NO_STORE})
        await response.prepare(request)
        frames = self.live.frames()
        try:
            async for jpeg in frames:
                await response.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                                     .encode() + jpeg + b"\r\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await frames.aclose()
        return response

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        scene = self.live.scene
        if scene is None:
            return _refuse(503, "no frame yet")
        jpeg = await asyncio.get_running_loop().run_in_executor(None, lambda: render(scene, mirrored=self.mirrored, quality=92))
        name = time.strftime("piposer-%Y%m%d-%H%M%S.jpg")
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Content-Disposition": f'attachment; filename="{name}"', **_NO_STORE})

    async def _command(self, request: web.Request) -> web.StreamResponse:
        try:
            command = parse_command(await request.read())
        except CommandError as exc:
            return _refuse(400, str(exc))
        self.on_request(command)
        return web.json_response({"queued": command.name, "id": command.request_id}, status=202)

    async def _save_zones(self, request: web.Request) -> web.StreamResponse:
        if self.config_path is None:
            return _refuse(409, "piposer runs without a config file: there is nowhere to save zones")
        try:
            edit = json.loads(await request.read())
            changes, deleted = list(edit.get("zones", [])), list(edit.get("deleted", []))
            if not all(isinstance(z, dict) for z in changes + deleted):
                raise ValueError("zones and deleted must be lists of objects")
        except (ValueError, AttributeError, TypeError) as exc:
            return _refuse(400, f"zone edit is not valid JSON of the console's shape ({exc})")
        try:
            await asyncio.get_running_loop().run_in_executor(None, zone_file.save, self.config_path, changes, deleted)
        except PiposerError as exc:
            return _refuse(400, str(exc))
        request_id = f"zones-{time.monotonic_ns()}"
        self.on_request(ReloadConfig(request_id=request_id))
        return web.json_response({"saved": str(self.config_path), "reload": request_id})


    async def _teach(self, request: web.Request) -> web.StreamResponse:
        """"Record this pose": the person in front of the camera in the newest frame becomes an example of
        the posted label (the running classifier picks the file up within a second)."""
        try:
            label = json.loads(await request.read())["label"]
            if not isinstance(label, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _refuse(400, 'recording a pose needs {"label": "name"}')
        scene = self.live.scene
        if scene is None:
            return _refuse(503, "no frame yet")
        if not self.poses_file:
            return _refuse(409, "piposer runs without a config file: there is nowhere to keep taught poses")
        first = not Path(self.poses_file).is_file()
        try:
            examples = await asyncio.get_running_loop().run_in_executor(
                None, record_pose, self.poses_file, label, scene.poses, "console", scene.frame.index)
        except PiposerError as exc:
            return _refuse(400, str(exc))
        if examples == 0:
            return _refuse(409, "nobody with both shoulders in view: nothing recorded")
        if first:  # the classifier starts with its first file
            self.on_request(ReloadConfig(request_id=f"poses-{time.monotonic_ns()}"))
        return web.json_response({"label": label, "examples": examples, "file": self.poses_file})


_NO_STORE = {"Cache-Control": "no-store"}


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _refuse(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)
