"""The web console in a real headless Chromium, on a real run over the sample video (PoseNet, tracker,
rules on mock GPIO pins): log in from this machine's network address, see the live image change with
the skeletons drawn, the stats the controller has, draw a zone by dragging, save it into the config
file (comments kept), the reload, the rule switching its pin for the people standing in it; a bad edit
is refused with `config check`'s line and the file untouched. Screenshots go to out/console/."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import tomllib

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from browser import Browser
from conftest import DATA, ROOT
from piposer import config
from piposer.rules.library import PoseLibrary
from piposer.runtime.controller import App
from piposer.web.auth import hash_password
from test_websocket import free_port, own_address

PASSWORD = "console test password"
SHOTS = ROOT / "out" / "console"
GREEN = np.array([0, 255, 0])  # BGR: the skeleton colour of track id 2 (sinks/render.py PALETTE)
CONFIG = """\
# my appliance: every comment here must survive the console's edits
[source]
source = "{video}"
loop = true                 # replay the clip forever

[mqtt]
enabled = false

[loop]
max_fps = 6                 # keep the test light on two cores

[web]
enabled = true
bind = "0.0.0.0"
port = {port}
password_file = "web-password"
live_fps = 4

[[outputs]]
name = "lamp"               # the porch lamp
pin = 17

[[rules]]
name = "corner"             # nobody ever stands down there
when = {{ zone = {{ keypoint = "nose", rect = [0.0, 0.9, 0.1, 1.0] }} }}
"""


def green_pixels(image: np.ndarray) -> int:
    return int((np.abs(image.astype(int) - GREEN).max(axis=2) < 60).sum())


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A running appliance (loop in a thread) with a logged-in browser on its console, from the network."""
    address = own_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    folder = tmp_path_factory.mktemp("console")
    path = folder / "config.toml"
    path.write_text(CONFIG.format(video=DATA / "video" / "room_pair.mp4", port=free_port()))
    (folder / "web-password").write_text(hash_password(PASSWORD) + "\n")
    SHOTS.mkdir(parents=True, exist_ok=True)
    factory = MockFactory()
    app = App(config.load(path), load_config=lambda: config.load(path), pin_factory=factory, log=lambda line: None)
    with app:
        loop = threading.Thread(target=app.run, daemon=True)
        loop.start()
        with Browser(folder / "chromium") as browser:
            base = f"http://{address}:{app.config.web.port}"
            browser.goto(f"{base}/")
            assert browser.js("location.pathname") == "/login"
            browser.type("#password", PASSWORD)
            browser.click("#login")
            browser.wait_for("location.pathname === '/' && document.getElementById('live').naturalWidth > 0")
            try:
                yield app, browser, path, factory
            finally:
                app.stop()
                loop.join(30)


def live_image(browser: Browser, name: str) -> np.ndarray:
    shot = browser.screenshot(SHOTS / f"{name}.png")
    x, y, w, h = (round(v) for v in browser.box("#live"))
    return shot[y:y + h, x:x + w]


def test_the_live_view_shows_the_skeletons_and_changes(console):
    app, browser, _, _ = console
    first = live_image(browser, "live-1")
    time.sleep(1.5)
    second = live_image(browser, "live-2")
    assert first.shape == second.shape and first.shape[1] > 400
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 1.0  # the video moves on
    assert green_pixels(first) > 40 and green_pixels(second) > 40  # track 2's skeleton is drawn
    assert app.tracker is not None and app.stats.frames > 5


def test_the_console_shows_the_controllers_stats_and_pauses(console):
    app, browser, _, _ = console
    browser.click("#pause")
    browser.wait_for("document.getElementById('pause').textContent === 'Resume'")
    assert app.paused
    expected = app.stats_dict()
    shown = browser.js("fetch('/api/state').then(r => r.json()).then(s => s.stats)")
    for key in ("frames", "fps", "people", "latency_ms", "inference_ms", "stages_ms", "model", "paused", "source"):
        assert shown[key] == expected[key], key
    browser.wait_for(f"document.getElementById('frames').textContent === '{expected['frames']}'")
    assert float(browser.js("document.getElementById('fps').textContent")) == expected["fps"]
    assert int(browser.js("document.getElementById('people').textContent")) == expected["people"]
    assert browser.js("[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('paused'))")
    browser.click("#pause")
    browser.wait_for("document.getElementById('pause').textContent === 'Pause'")
    assert not app.paused


def test_a_zone_drawn_by_dragging_is_saved_and_switches_its_pin(console):
    app, browser, path, factory = console
    before = path.read_text()
    browser.click("#mode-rect")
    browser.js("window.scrollTo(0, 0)")
    x, y, w, h = browser.box("#zones")
    browser.drag((x + 0.25 * w, y + 0.1 * h), (x + 0.7 * w, y + 0.6 * h))
    browser.wait_for("!document.getElementById('selected').hidden")
    browser.js("document.getElementById('zone-name').select()")
    browser.type("#zone-name", "couch")
    browser.js("const o = document.getElementById('zone-output'); o.value = 'lamp';"
               " o.dispatchEvent(new Event('change'))")
    browser.click("#save")
    message = browser.wait_for("(m => m !== 'saving...' && m)(document.getElementById('message').textContent)")
    assert message.startswith(f"saved to {path}")
    after = path.read_text()
    for line in before.splitlines():
        assert line in after  # comments and layout kept; the new rule is added at the end
    (couch,) = [r for r in tomllib.loads(after)["rules"] if r["name"] == "couch"]
    assert couch["when"]["zone"]["rect"] == pytest.approx([0.25, 0.1, 0.7, 0.6], abs=0.01)
    assert couch["actions"] == [{"output": "lamp", "mode": "hold"}]
    deadline = time.monotonic() + 60  # generous: the whole suite shares two cores
    while "couch" not in [r.name for r in app.config.rules]:  # the reload, between frames
        assert time.monotonic() < deadline
        time.sleep(0.1)
    while not factory.pin(17).state:  # the two people's noses are in the drawn zone
        assert time.monotonic() < deadline, f"the drawn zone's rule never switched its pin ({app.stats_dict()})"
        time.sleep(0.1)
    browser.wait_for("document.getElementById('active').textContent.includes('couch')")
    browser.screenshot(SHOTS / "console.png")


def test_a_bad_edit_is_refused_with_config_checks_line(console):
    app, browser, path, _ = console
    browser.click("#mode-select")
    browser.js("window.scrollTo(0, 0)")
    browser.wait_for("document.querySelector('#zones polygon[data-rule=corner]') !== null")
    x, y, w, h = browser.box("#zones polygon[data-rule=corner]")
    browser.drag((x + w / 2, y + h / 2), (x + w / 2 - 20, y + h / 2 - 20))  # move it a little
    browser.js("document.getElementById('zone-name').select()")
    browser.type("#zone-name", "far corner")  # a space: not a rule name
    before = path.read_bytes()
    browser.click("#save")
    message = browser.wait_for("(m => m.startsWith('config') && m)(document.getElementById('message').textContent)")
    assert path.read_bytes() == before  # nothing written
    bad = path.with_name("bad.toml")
    bad.write_text(before.decode().replace('name = "corner"', 'name = "far corner"'))
    check = subprocess.run([sys.executable, "-m", "piposer", "config", "check", "--config", str(bad)],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert check.stderr == f"piposer: error: {message.replace(str(path), str(bad))}\n"
    assert "every rule needs a name" in message and "\n" not in message


def test_record_this_pose_teaches_the_running_classifier(console):
    """"Record this pose" five times while the two people stand: the poses file beside the config gets
    the examples, the classifier starts (a reload) and the console's events show people labelled."""
    app, browser, path, _ = console
    poses_file = path.with_name("poses.json")
    assert not poses_file.exists()
    browser.js("window.scrollTo(0, 0)")
    browser.type("#teach-label", "standing")
    for n in range(1, 6):
        browser.click("#teach button")
        message = browser.wait_for(f"(m => m.includes(': {n} examples') && m)"
                                   "(document.getElementById('teach-message').textContent)")
        assert message == f"recorded 'standing': {n} examples"
        time.sleep(0.4)  # a new frame between examples
    assert PoseLibrary.load(poses_file).labels() == {"standing": 5}
    browser.wait_for("document.getElementById('events').textContent.includes('standing')", timeout=120)


def test_the_console_fits_a_phone(console):
    _, browser, _, _ = console
    browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
    try:
        browser.wait_for("document.getElementById('live').getBoundingClientRect().width <= 390")
        live = browser.box("#live")
        aside = browser.box("aside")
        assert live[2] > 300 and aside[1] >= live[1] + live[3]  # one column: the view, then the panels
        assert browser.js("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        browser.screenshot(SHOTS / "phone.png")
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")
