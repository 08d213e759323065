"""The appliance loop with real parts: PoseNet, real video, a real Mosquitto broker, a real notify socket;
the Pi camera is the fake picamera2 module (hardware edge)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

import fake_picamera2
from broker import Broker, Subscriber
from conftest import DATA, ROOT
from piposer import commands, config
from piposer.runtime.controller import App
from piposer.runtime.supervisor import run
from piposer.errors import PiposerError
from piposer.rules import ButtonSettings, OutputSettings
from piposer.rules import ActionSettings, Condition, RuleSettings, Zone
from piposer.sinks.mqtt import MqttSettings
from piposer.runtime.systemd import Notifier
from test_sources import wait_for
from test_systemd import NotifySocket

VIDEO = DATA / "video" / "room_pair.mp4"


def make_config(source=str(VIDEO), mqtt: MqttSettings | None = None, **loop):
    cfg = config.load(None)
    cfg.source.source = source
    cfg.mqtt = mqtt or MqttSettings(enabled=False)
    for key, value in loop.items():
        setattr(cfg.loop, key, value)
    return cfg


@pytest.fixture(scope="module")
def camera_frames():
    capture = cv2.VideoCapture(str(VIDEO))
    frames = [capture.read()[1] for _ in range(8)]
    capture.release()
    return frames


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def notify(tmp_path):
    s = NotifySocket(tmp_path / "notify")
    yield s
    s.close()


class Running:
    """An App running in a thread (as `piposer run` would in its main thread), with a log of its events."""

    def __init__(self, cfg, notifier=None, **kwargs):
        self.lines: list[str] = []
        self.app = App(cfg, notifier=notifier, log=self.lines.append, **kwargs).open()
        self.reason = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        try:
            self.reason = self.app.run()
        finally:
            self.app.close()

    def frames_after(self, seconds: float) -> int:
        start = self.app.stats.frames
        time.sleep(seconds)
        return self.app.stats.frames - start

    def stop(self) -> str:
        self.app.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.reason

    def events(self, kind: str) -> list[dict]:
        prefix = f"event {kind}: "
        return [json.loads(line[len(prefix):]) for line in self.lines if line.startswith(prefix)]


def test_video_to_mqtt_and_gpio_end_to_end(broker, monkeypatch):
    """room_pair.mp4 -> PoseNet -> tracker -> GPIO rules (mock pins) and MQTT (real broker)."""
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)  # the GPIO header is the only thing faked
    mqtt = MqttSettings(host=broker.host, port=broker.port, device_id="e2e", discovery=False, qos=1)
    cfg = make_config(mqtt=mqtt, stats_interval=0.5)
    cfg.outputs = [OutputSettings(name="lamp", kind="led", pin=17)]
    cfg.rules = [RuleSettings(name="in_room", per_person=True, actions=[ActionSettings(output="lamp")],
                              when=Condition(zone=Zone(keypoint="nose", rect=[0.0, 0.0, 1.0, 1.0])))]
    with Subscriber(broker, "piposer/e2e/#") as sub:
        with App(cfg, log=lambda _: None) as app:
            assert app.run() == "finished"
            stats = app.stats_dict()
            lamp_during_run = factory.pin(17).state
        poses = [m.json() for m in sub.wait_for("piposer/e2e/poses", 72)]
        availability = sub.wait_for("piposer/e2e/availability", 2)
        sent_stats = sub.wait_for("piposer/e2e/stats")[-1].json()
        rule_events = [m.json() for m in sub.wait_for("piposer/e2e/events", 2, where=lambda m: b'"rule"' in m.payload)]
    with Subscriber(broker, "piposer/e2e/availability") as late:  # what a newcomer sees: the retained state
        retained = late.wait_for("piposer/e2e/availability")[0]
    assert [p["frame"] for p in poses] == list(range(72))
    assert {p["width"] for p in poses} == {1920} and {p["model"] for p in poses} == {"posenet"}
    ids = {pose["id"] for p in poses for pose in p["poses"]}
    assert ids == {1, 2}  # the two people keep their ids from the first frame to the last
    # per-person rule: edges for each tracked person (by track id), the lamp on while they are there, off (safe) after
    assert {e["person"] for e in rule_events if e["rule"] == "in_room" and e["edge"] == "rising"} == {1, 2}
    assert lamp_during_run is True and factory.pin(17).state is False
    assert [m.payload for m in availability] == [b"online", b"offline"]
    assert retained.payload == b"offline" and retained.retain
    assert stats["frames"] == 72 and stats["source"]["frames"] == 72 and stats["fps"] > 0
    assert set(stats["stages_ms"]) >= {"read", "frame_age", "estimate", "track", "RulesSink", "MqttSink"}
    assert stats["latency_ms"]["p50"] >= stats["stages_ms"]["estimate"]
    assert stats["inference_ms"]["p50"] == stats["stages_ms"]["estimate"] <= stats["inference_ms"]["p95"]
    assert sent_stats["frames"] > 0 and "latency_ms" in sent_stats and sent_stats["model"] == "posenet"


def test_sigterm_shuts_down_cleanly(broker, notify, tmp_path):
    """`run()` in its own process on a live (fake) camera: READY, watchdog, then SIGTERM -> offline, camera released."""
    script = f"""
import sys, pytest, cv2
sys.path.insert(0, {str(ROOT / 'tests')!r})
import fake_picamera2
from piposer import config
from piposer.runtime.supervisor import run
from piposer.sinks.mqtt import MqttSettings
cam = fake_picamera2.install(pytest.MonkeyPatch(), [cv2.imread({str(DATA / 'tflite_pose_testdata' / 'image3.jpeg')!r})],
                             interval=0.02)
cfg = config.load(None)
cfg.source.source = "picamera2"
cfg.mqtt = MqttSettings(host="127.0.0.1", port={broker.port}, device_id="term", discovery=False)
code = run(cfg)
print("exit", code, "camera closed", cam.instances[0].closed, flush=True)
sys.exit(code)
"""
    env = {**notify.env(watchdog=1.0), "PIPOSER_MODEL_DIR": config.os.environ["PIPOSER_MODEL_DIR"],
           "PATH": "/usr/bin:/bin"}
    with Subscriber(broker, "piposer/term/#") as sub:
        process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            assert notify.wait_for("READY=1", timeout=30)
            notify.wait_for("WATCHDOG=1")
            sub.wait_for("piposer/term/poses", 3)
            process.terminate()
            out, _ = process.communicate(timeout=20)
        finally:
            process.kill()
        assert process.returncode == 0, out
        assert "received SIGTERM, shutting down" in out
        assert "exit 0 camera closed True" in out
        assert sub.wait_for("piposer/term/availability", 2)[-1].payload == b"offline"
    notify.wait_for("STOPPING=1", timeout=1)


def test_watchdog_is_fed_only_while_frames_advance(monkeypatch, camera_frames, notify):
    cam = fake_picamera2.install(monkeypatch, camera_frames, interval=0.01)
    run = Running(make_config("picamera2"), notifier=Notifier(notify.env(watchdog=0.2)))
    try:
        notify.wait_for("READY=1")
        notify.wait_for("WATCHDOG=1")
        cam.stall.set()  # the camera hangs: no new frames
        notify.drain(1.5)  # the frame being processed when it hung may still ping
        frames = run.app.stats.frames
        assert "WATCHDOG=1" not in notify.drain(1.0)
        assert run.app.stats.frames == frames
        cam.stall.clear()
        notify.wait_for("WATCHDOG=1", timeout=5)
    finally:
        assert run.stop() == "stopped"
    assert cam.instances[0].closed


def test_pause_stops_inference_but_not_the_watchdog(monkeypatch, camera_frames, notify):
    fake_picamera2.install(monkeypatch, camera_frames, interval=0.01)
    run = Running(make_config("picamera2"), notifier=Notifier(notify.env(watchdog=0.2)))
    try:
        wait_for(lambda: run.app.stats.frames > 0)
        run.app.command(commands.Pause(request_id="p1"))
        wait_for(lambda: run.app.paused)
        time.sleep(0.1)
        assert run.frames_after(0.5) == 0
        notify.drain()
        notify.wait_for("WATCHDOG=1", timeout=2)  # frames still arrive, so the service is healthy
        paused_at = run.app.stats.frames
        run.app.command(commands.Resume())
        wait_for(lambda: run.app.stats.frames > paused_at)
    finally:
        run.stop()
    assert [e["id"] for e in run.events("paused")] == ["p1"] and len(run.events("resumed")) == 1


def test_frame_cap_does_not_add_latency(monkeypatch, camera_frames):
    fake_picamera2.install(monkeypatch, camera_frames, interval=0.005)
    run = Running(make_config("picamera2", max_fps=5))
    try:
        wait_for(lambda: run.app.stats.frames >= 2)
        processed = run.frames_after(2.0)
    finally:
        run.stop()
    stats = run.app.stats.as_dict()
    assert 1 <= processed <= 11, stats  # at most 5 per second (+1 for where the window falls)
    # the cap sleeps *before* taking the newest frame: frames are fresh when inference starts,
    # not up to a 200 ms period old (the camera delivers one every 5 ms)
    assert stats["stages_ms"]["frame_age"] < 50, stats


def test_snapshot_and_thresholds_commands(tmp_path):
    cfg = make_config(snapshot_dir=str(tmp_path / "snaps"))
    app = App(cfg, log=lambda _: None).open()
    try:
        app.command(commands.Snapshot(request_id="s1"))
        app.command(commands.SetThresholds(keypoint_threshold=0.8, pose_threshold=0.4))
        app.run(max_frames=1)
        assert app.run(max_frames=5) == "finished"
        followed = len(app.tracker)
    finally:
        app.close()
    (jpg,) = (tmp_path / "snaps").glob("*.jpg")
    assert cv2.imread(str(jpg)).shape == (1080, 1920, 3)
    poses = json.loads(jpg.with_suffix(".json").read_text())
    assert sorted(p["id"] for p in poses) == [1, 2] and min(p["score"] for p in poses) >= 0.4
    assert all(k["detected"] == (k["score"] >= 0.8) for p in poses for k in p["keypoints"].values())
    assert followed == 2


def reloaded_parts(lines: list[str]) -> set[str]:
    """What the one `reloaded: a, b` log line says was rebuilt or reconfigured."""
    (line,) = [line for line in lines if line.startswith("reloaded: ")]
    return set(line.removeprefix("reloaded: ").split(", "))


def test_reload_applies_a_valid_config_in_place_and_keeps_running_on_a_bad_one(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(f'[source]\nsource = "{VIDEO}"\n[tracking]\nmax_age = 2.5\n[mqtt]\nenabled = false\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('[tracking]\nmax_age = -1\n')
    target = {"path": bad}
    lines: list[str] = []
    with App(make_config(), load_config=lambda: config.load(target["path"]), log=lines.append) as app:
        estimator, source, tracker = app.pipeline.estimator, app.pipeline.source, app.tracker
        app.command(commands.ReloadConfig(request_id=7))
        assert app.run(max_frames=3) == "finished"
        (failed,) = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("event command_failed")]
        assert failed["id"] == 7 and "tracking.max_age must be > 0" in failed["error"]
        assert app.tracker is tracker and app.config.tracking.max_age == 1.0
        target["path"] = good
        app.command(commands.ReloadConfig())
        assert app.run(max_frames=6) == "finished"  # the same run goes on: frames 4..6 on the new config
        assert app.config.tracking.max_age == 2.5 and app.tracker is not tracker
        assert app.pipeline.estimator is estimator and app.pipeline.source is source  # unchanged: kept
        assert app.stats.frames == 6
    assert {"tracking"} <= reloaded_parts(lines) and not {"model", "source", "MqttSink"} & reloaded_parts(lines)


def test_paused_stats_show_no_stale_fps_and_reload_restores_the_config_thresholds(tmp_path):
    """While paused nothing is processed, so `fps` is 0, not the last window's rate; a reload puts a
    `thresholds` command's values back to the config's and says so with a `thresholds` event."""
    same = tmp_path / "same.toml"
    same.write_text(f'[source]\nsource = "{VIDEO}"\n[mqtt]\nenabled = false\n')
    lines: list[str] = []
    with App(make_config(), load_config=lambda: config.load(same), log=lines.append) as app:
        assert app.run(max_frames=4) == "finished"
        assert app.stats_dict()["fps"] > 0
        app.command(commands.Pause())
        app.command(commands.SetThresholds(keypoint_threshold=0.7, pose_threshold=0.5))
        app.command(commands.ReloadConfig())
        threading.Timer(0.5, app.stop).start()
        assert app.run() == "stopped"
        stats = app.stats_dict()
        assert stats["paused"] is True and stats["fps"] == 0.0
        assert app.pipeline.estimator.keypoint_threshold == 0.3 and app.pipeline.min_pose_score == 0.3  # defaults
    thresholds = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("event thresholds")]
    assert thresholds == [
        {"command": "thresholds", "keypoint_threshold": 0.7, "pose_threshold": 0.5},
        {"reason": "reload", "keypoint_threshold": 0.3, "pose_threshold": 0.3},
    ]


def test_failed_start_releases_what_was_opened(monkeypatch, camera_frames, tmp_path):
    cam = fake_picamera2.install(monkeypatch, camera_frames)
    mqtt = MqttSettings(username="pi", password_file=str(tmp_path / "missing"))
    with pytest.raises(PiposerError, match="mqtt.password_file: cannot read"):
        App(make_config("picamera2", mqtt=mqtt), log=lambda _: None).open()
    assert cam.instances[0].closed


def test_loop_settings_are_validated_with_the_key_named():
    with pytest.raises(PiposerError, match="loop.max_fps must be >= 0"):
        config.build(config.Config, {"loop": {"max_fps": -1}}, "")
    with pytest.raises(PiposerError, match="loop.min_pose_score must be within 0..1"):
        config.build(config.Config, {"loop": {"min_pose_score": 2}}, "")


def test_short_soak_through_the_whole_loop():
    """`make soak` in miniature: a looping source through PoseNet, tracker and a real broker, every message arriving."""
    stills = DATA / "tflite_pose_testdata"  # 3 photos, looped
    result = subprocess.run([sys.executable, str(ROOT / "bench/soak.py"), "--source", str(stills), "--frames", "40",
                             "--chunk", "20"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert summary["frames"] == 40 and summary["mqtt_poses_received"] == 40
    assert summary["rss_growth_mb"] < 10 and summary["rss_after_open_mb"] > 0
    assert summary["fps"] > 0 and "target < 10 MB: OK" in result.stdout


def test_sighup_reloads_the_config_in_process(tmp_path):
    """`run()` wires SIGHUP to a reload: the looping first source gives way to the reloaded one, which ends."""
    stills = DATA / "tflite_pose_testdata"
    reloaded = tmp_path / "config.toml"
    reloaded.write_text(f'[source]\nsource = "{stills}"\n[tracking]\nmax_age = 3.0\n[mqtt]\nenabled = false\n')
    lines: list[str] = []
    code = run_with_timers(looping_stills(), lambda: config.load(reloaded), [(1.0, signal.SIGHUP)], lines)
    assert code == 0
    assert [line.split(" after ")[0] for line in lines if line.startswith("loop ")] == ["loop finished"], lines
    assert {"source", "tracking"} <= reloaded_parts(lines) and "model" not in reloaded_parts(lines)
    assert any(line.startswith("event reloading:") for line in lines)


def lamp_config(broker, device_id: str, **rule):
    """room_pair.mp4 with a lamp held on while anyone is in the picture, and MQTT on the test broker."""
    mqtt = MqttSettings(host=broker.host, port=broker.port, device_id=device_id, discovery=False, qos=1)
    cfg = make_config(mqtt=mqtt)
    cfg.outputs = [OutputSettings(name="lamp", kind="led", pin=17)]
    cfg.rules = [RuleSettings(name="anyone", actions=[ActionSettings(output="lamp")],
                              when=Condition(zone=Zone(keypoint="nose", rect=[0.0, 0.0, 1.0, 1.0])), **rule)]
    return cfg


def rule_events(sub, topic: str, count: int) -> list[dict]:
    found = sub.wait_for(topic, count, where=lambda m: m.json()["event"] == "rule")
    return [{k: v for k, v in m.json().items() if k != "timestamp"} for m in found]


def test_final_falling_edge_on_close_reaches_mqtt_before_offline(broker, monkeypatch):
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    with Subscriber(broker, "piposer/bye/#") as sub:
        with App(lamp_config(broker, "bye"), log=lambda _: None) as app:
            assert app.run(max_frames=3) == "finished"
            assert factory.pin(17).state is True
        assert rule_events(sub, "piposer/bye/events", 2) == [
            {"event": "rule", "rule": "anyone", "edge": "rising", "person": None},
            {"event": "rule", "rule": "anyone", "edge": "falling", "person": None, "reason": "stopped"},
        ]
        assert sub.wait_for("piposer/bye/availability", 2)[-1].payload == b"offline"
    assert factory.pin(17).state is False


def test_pause_makes_outputs_safe_and_a_snapshot_still_works(broker, monkeypatch, tmp_path):
    """A rule with a long release delay holds the lamp; pausing turns it off at once, says nobody is there,
    and a snapshot asked for while paused is taken from a fresh frame."""
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    cfg = lamp_config(broker, "nap", release_after=600.0)
    cfg.loop.snapshot_dir = str(tmp_path / "snaps")
    with Subscriber(broker, "piposer/nap/#") as sub:
        with App(cfg, log=lambda _: None) as app:
            assert app.run(max_frames=3) == "finished"
            assert factory.pin(17).state is True
            app.command(commands.Pause(request_id="p"))
            app.command(commands.Snapshot(request_id="s"))
            threading.Timer(1.0, app.stop).start()
            assert app.run() == "stopped"
            lamp_while_paused = factory.pin(17).state
            assert app.stats.frames == 3  # nothing processed while paused
        events = rule_events(sub, "piposer/nap/events", 2)
        snapshot = sub.wait_for("piposer/nap/events", where=lambda m: m.json()["event"] == "snapshot")[0].json()
        states = [(m.json()["people"], m.json()["status"]) for m in sub.wait_for(
            "piposer/nap/state", 2, where=lambda m: m.json()["status"] != "starting")]
    assert lamp_while_paused is False
    assert events == [
        {"event": "rule", "rule": "anyone", "edge": "rising", "person": None},
        {"event": "rule", "rule": "anyone", "edge": "falling", "person": None, "reason": "paused"},
    ]  # and no second "stopped" falling edge: the rule was released
    assert states == [(2, "running"), (0, "paused")]
    assert snapshot["id"] == "s" and snapshot["people"] == 2
    (jpg,) = (tmp_path / "snaps").glob("*.jpg")
    assert jpg.name.endswith("-3.jpg")  # the frame after the 3 processed ones


def test_button_resumes_after_an_mqtt_pause(monkeypatch):
    factory = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", factory)
    cfg = make_config()
    cfg.button = ButtonSettings(pin=4, bounce_time=0)
    lines: list[str] = []
    with App(cfg, log=lines.append) as app:
        assert app.run(max_frames=1) == "finished"
        app.command(commands.Pause())  # as the MQTT thread would
        factory.pin(4).drive_low()
        factory.pin(4).drive_high()  # a short press
        guard = threading.Timer(10.0, app.stop)
        guard.start()
        try:
            assert app.run(max_frames=3) == "finished"  # resumed: frames are processed again
        finally:
            guard.cancel()
    assert not app.paused
    assert [line.split(":")[0] for line in lines if line.startswith("event ")] == ["event paused", "event resumed"]


def run_with_timers(cfg, load, timers: list[tuple[float, int]], lines: list[str], **kwargs) -> int:
    """`run()` in this (main) thread with signals sent to this process after the given delays."""
    pending = [threading.Timer(delay, os.kill, (os.getpid(), sig)) for delay, sig in timers]
    for timer in pending:
        timer.start()
    try:
        return run(cfg, load_config=load, log=lines.append, **kwargs)
    finally:
        for timer in pending:
            timer.cancel()


def looping_stills():
    cfg = make_config(str(DATA / "tflite_pose_testdata"))
    cfg.source.loop = True
    return cfg


def test_reload_that_cannot_open_keeps_the_running_config(tmp_path):
    """A reloaded file that validates but cannot open (its video is missing) is reported as command_failed,
    and the old config keeps running without a pause."""
    reloaded = tmp_path / "config.toml"
    reloaded.write_text(f'[source]\nsource = "{tmp_path / "gone.mp4"}"\n[mqtt]\nenabled = false\n')
    lines: list[str] = []
    code = run_with_timers(looping_stills(), lambda: config.load(reloaded),
                           [(1.0, signal.SIGHUP), (3.0, signal.SIGTERM)], lines)
    assert code == 0
    ends = [line.split(" after ")[0] for line in lines if line.startswith("loop ")]
    assert ends == ["loop stopped"], lines  # before the fix: PiposerError, exit 2
    (failed,) = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("event command_failed")]
    assert failed["command"] == "reload" and "gone.mp4" in failed["error"]


def test_failed_late_reload_leaves_pins_and_mqtt_untouched(broker, tmp_path):
    """The reported case: a reload whose config names a missing password file, with [[outputs]] defined,
    used to exit the appliance ("GPIO17 is already in use"). Now it is refused and nothing moves: the lamp
    stays on without a flicker, MQTT stays connected (no offline/online)."""
    factory = MockFactory()
    cfg = lamp_config(broker, "late", release_after=600.0)
    reloaded = tmp_path / "config.toml"
    reloaded.write_text(f"""
[source]
source = "{VIDEO}"
[mqtt]
host = "{broker.host}"
port = {broker.port}
device_id = "late"
discovery = false
username = "pi"
password_file = "{tmp_path / 'nowhere'}"
[[outputs]]
name = "lamp"
kind = "led"
pin = 17
""")
    lines: list[str] = []
    with Subscriber(broker, "piposer/late/#") as sub:
        with App(cfg, load_config=lambda: config.load(reloaded), log=lines.append, pin_factory=factory) as app:
            assert app.run(max_frames=3) == "finished"
            lamp = factory.pin(17)
            assert lamp.state is True
            states_before = list(lamp.states)
            app.command(commands.ReloadConfig(request_id="r"))
            assert app.run(max_frames=5) == "finished"
            assert lamp.states == states_before and lamp.state is True  # not one change
        failed = sub.wait_for("piposer/late/events", where=lambda m: m.json()["event"] == "command_failed")[0].json()
        availability = [m.payload.decode() for m in sub.on("piposer/late/availability")]
    assert failed["id"] == "r" and "mqtt.password_file: cannot read" in failed["error"] and "nowhere" in failed["error"]
    assert availability[-2:] != ["offline", "online"] and availability.count("online") == 1, availability


def test_successful_reload_with_the_same_outputs_does_not_touch_pins_or_mqtt(broker, tmp_path):
    """Changing a rule's timing and the tracker keeps the outputs and the MQTT connection: the unchanged lamp
    never switches, availability is not republished; the changed rule starts afresh on the same pins."""
    factory = MockFactory()
    cfg = lamp_config(broker, "same", release_after=600.0)
    cfg.rules.append(RuleSettings(name="nobody", actions=[], when=Condition(zone=Zone(keypoint="nose", rect=[0.0, 0.0, 0.01, 0.01]))))
    reloaded = tmp_path / "config.toml"
    reloaded.write_text(f"""
[source]
source = "{VIDEO}"
[tracking]
max_age = 2.0
[mqtt]
host = "{broker.host}"
port = {broker.port}
device_id = "same"
discovery = false
qos = 1
[[outputs]]
name = "lamp"
kind = "led"
pin = 17
[[rules]]
name = "anyone"
release_after = 600.0
when = {{ zone = {{ keypoint = "nose", rect = [0.0, 0.0, 1.0, 1.0] }} }}
actions = [{{ output = "lamp" }}]
""")
    lines: list[str] = []
    with Subscriber(broker, "piposer/same/#") as sub:
        with App(cfg, load_config=lambda: config.load(reloaded), log=lines.append, pin_factory=factory) as app:
            assert app.run(max_frames=3) == "finished"
            lamp = factory.pin(17)
            states_before = list(lamp.states)
            app.command(commands.ReloadConfig())
            assert app.run(max_frames=6) == "finished"
            assert lamp.states == states_before and lamp.state is True
            assert [r.settings.name for r in app.sinks.built[0].sink.engine.rules] == ["anyone"]
        availability = [m.payload.decode() for m in sub.wait_for("piposer/same/availability", 2)]
        events = rule_events(sub, "piposer/same/events", 2)
    # MQTT takes the removed rule in place (its Home Assistant entities go): it neither reconnects
    assert {"RulesSink", "tracking", "MqttSink"} <= reloaded_parts(lines) and "model" not in reloaded_parts(lines)
    assert availability == ["online", "offline"]  # online once at start, offline once at close
    assert events == [  # the kept rule did not fall and rise again across the reload
        {"event": "rule", "rule": "anyone", "edge": "rising", "person": None},
        {"event": "rule", "rule": "anyone", "edge": "falling", "person": None, "reason": "stopped"},
    ]


def test_snapshot_is_drawn_on_the_mirrored_image_with_flip_horizontal(tmp_path, camera_frames):
    cfg = make_config(snapshot_dir=str(tmp_path / "snaps"))
    cfg.model.flip_horizontal = True
    with App(cfg, log=lambda _: None) as app:
        app.command(commands.Snapshot())
        assert app.run(max_frames=1) == "finished"
    (jpg,) = (tmp_path / "snaps").glob("*.jpg")
    corner = cv2.imread(str(jpg))[:120, :120].astype(float)  # no one stands in the top-left corner
    mirrored, plain = cv2.flip(camera_frames[0], 1)[:120, :120], camera_frames[0][:120, :120]
    assert abs(corner - mirrored).mean() < 4 < abs(corner - plain).mean()


def test_a_dead_mqtt_thread_ends_the_run_as_failed_with_offline_published(broker):
    """A worker thread that dies is noticed between frames: the loop ends as "failed" (the supervisor exits 1,
    so systemd restarts the service), and closing still leaves `offline` retained."""
    cfg = lamp_config(broker, "dead")
    cfg.source.loop = True  # would run forever
    with App(cfg, log=lambda _: None, pin_factory=MockFactory()) as app:
        mqtt = next(b.sink for b in app.sinks.built if b.sink.name == "MqttSink")

        def fatal(*args):
            raise SystemExit("simulated crash of paho's thread")

        mqtt._client.on_message = fatal
        with Subscriber(broker, "piposer/dead/set") as sub:
            sub.publish("piposer/dead/set", '{"command": "pause"}')
        guard = threading.Timer(20.0, app.stop)  # fails the test rather than hanging
        guard.start()
        try:
            assert app.run() == "failed"
        finally:
            guard.cancel()
    with Subscriber(broker, "piposer/dead/availability") as sub:
        assert sub.wait_for("piposer/dead/availability")[0].payload == b"offline"


def test_reload_moves_snapshots_to_the_new_folder(tmp_path):
    """The rebuilt snapshot sink takes its folder from the new config, not from the one being replaced."""
    reloaded = tmp_path / "config.toml"
    reloaded.write_text(f'[source]\nsource = "{VIDEO}"\n[loop]\nsnapshot_dir = "{tmp_path / "new"}"\n[mqtt]\nenabled = false\n')
    with App(make_config(snapshot_dir=str(tmp_path / "old")), load_config=lambda: config.load(reloaded),
             log=lambda _: None) as app:
        app.command(commands.ReloadConfig())
        app.command(commands.Snapshot())
        assert app.run(max_frames=2) == "finished"
    assert not (tmp_path / "old").exists()
    assert len(list((tmp_path / "new").glob("*.jpg"))) == 1
