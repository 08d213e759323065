"""A real headless Chromium driven over the Chrome DevTools Protocol (aiohttp's WebSocket client): open
pages, run JavaScript, drag the mouse, take screenshots. What Playwright does, in the few calls the tests use."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np


class Browser:
    """Chromium with one page; every method blocks until the browser has answered."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 800):
        chromium = shutil.which("chromium")
        assert chromium, "chromium is missing: `make test-deps` installs it"
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert time.monotonic() < deadline and self.process.poll() is None, "chromium did not start"
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        self._call(self._connect())
        self.send("Page.enable")
        self.send("Runtime.enable")

    def _call(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _connect(self):
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{self.port}/json/list") as response:
            page = next(t for t in await response.json() if t["type"] == "page")
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)

    async def _send(self, method: str, params: dict):
        id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": id, "method": method, "params": params}))
        while True:
            message = json.loads((await self._ws.receive()).data)
            if message.get("id") == id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def send(self, method: str, **params):
        return self._call(self._send(method, params))

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20):
        """The expression's value once it is truthy (an expression that throws, mid-navigation, is falsy)."""
        deadline = time.monotonic() + timeout
        while not (value := self.js(f"(() => {{ try {{ return {expression}; }} catch (e) {{ return null; }} }})()")):
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            time.sleep(0.1)
        return value

    def box(self, selector: str) -> tuple[float, float, float, float]:
        """The element's x, y, width, height on the page (CSS pixels)."""
        r = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                    " return [r.x, r.y, r.width, r.height]; })()")
        return tuple(r)

    def click(self, selector: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})")
        x, y, w, h = self.box(selector)
        self.drag((x + w / 2, y + h / 2), (x + w / 2, y + h / 2), steps=1)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """Press the left button at `start`, move to `end` in steps, release: a real drag to the page."""
        mouse = lambda kind, x, y, **extra: self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)
        mouse("mouseMoved", *start)
        mouse("mousePressed", *start, button="left", buttons=1, clickCount=1)
        for i in range(1, steps + 1):
            t = i / steps
            mouse("mouseMoved", start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t,
                  button="left", buttons=1)
        mouse("mouseReleased", *end, button="left", buttons=0, clickCount=1)

    def type(self, selector: str, text: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path | None = None) -> np.ndarray:
        """The page as a BGR image (saved as PNG at `path` too)."""
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        if path is not None:
            path.write_bytes(data)
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)

    def close(self) -> None:
        try:
            self._call(self._ws.close(), 10)
            self._call(self._session.close(), 10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
