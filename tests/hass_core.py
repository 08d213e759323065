"""A real Home Assistant core for tests: its own venv (built by `make test-hass`), a fresh config folder,
onboarding through its API for a token, and the MQTT integration added through its config flow."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from broker import free_port

VENV = Path(os.environ.get("PIPOSER_HASS_VENV", Path.home() / ".cache" / "piposer-hass-venv"))
READY_MARK = VENV / ".installed"  # written by `make test-hass` once everything is installed
CONFIG = """\
homeassistant:
  name: piposer test
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
onboarding:
config:
image:
logger:
  default: warning
"""


class HomeAssistant:
    """`hass -c <folder>` on a loopback port; `state()`, `call()` and `ws()` talk to it as a user would."""

    def __init__(self, folder: Path, broker_port: int):
        self.folder = folder
        self.broker_port = broker_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> HomeAssistant:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "configuration.yaml").write_text(CONFIG.format(port=self.port))
        self.process = subprocess.Popen(
            [str(VENV / "bin" / "hass"), "-c", str(self.folder), "--skip-pip"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": ""})
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("GET", "/api/onboarding")
                break
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Home Assistant did not start; its log:\n{self.log()[-3000:]}") from None
                time.sleep(0.5)
        self._onboard()
        self._add_mqtt()
        return self

    def _onboard(self) -> None:
        client = f"{self.url}/"
        user = self.request("POST", "/api/onboarding/users", {
            "client_id": client, "name": "Test", "username": "test", "password": "test-password", "language": "en"})
        token = self.request("POST", "/auth/token", form={
            "grant_type": "authorization_code", "code": user["auth_code"], "client_id": client})
        self.token = token["access_token"]

    def _add_mqtt(self) -> None:
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        done = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                            {"broker": "127.0.0.1", "port": self.broker_port})
        if done.get("type") != "create_entry":
            raise RuntimeError(f"MQTT config flow did not finish: {done}")

    def request(self, method: str, path: str, data=None, form=None, raw: bool = False):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        body = None
        if data is not None:
            body, headers["Content-Type"] = json.dumps(data).encode(), "application/json"
        elif form is not None:
            body, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.url + path, body, headers, method=method)
        with urllib.request.urlopen(req, timeout=10) as response:
            content = response.read()
        return content if raw else json.loads(content or b"null")

    def state(self, entity_id: str) -> dict | None:
        """The entity's state object, or None when Home Assistant has no such entity."""
        try:
            return self.request("GET", f"/api/states/{entity_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def wait_state(self, entity_id: str, wanted, timeout: float = 20.0) -> dict | None:
        """Wait until the entity's state is `wanted` (None: until the entity is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(entity_id)
            value = state["state"] if state else None
            if value == wanted:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{entity_id} is {value!r}, not {wanted!r} after {timeout} s")
            time.sleep(0.2)

    def call(self, domain: str, service: str, **data) -> None:
        self.request("POST", f"/api/services/{domain}/{service}", data)

    def ws(self, *messages: dict) -> list:
        """Send websocket API commands in order; returns each one's result."""
        import aiohttp

        async def talk():
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"{self.url}/api/websocket") as ws:
                    await ws.receive_json()  # auth_required
                    await ws.send_json({"type": "auth", "access_token": self.token})
                    assert (await ws.receive_json())["type"] == "auth_ok"
                    results = []
                    for i, message in enumerate(messages, 1):
                        await ws.send_json({"id": i, **message})
                        while (reply := await ws.receive_json()).get("id") != i:
                            pass
                        assert reply["success"], reply
                        results.append(reply["result"])
                    return results

        return asyncio.run(talk())

    def log(self) -> str:
        path = self.folder / "home-assistant.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
