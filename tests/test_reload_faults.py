"""Reloads with every kind of bad config, and signals at random moments of `run`: after each, the
appliance is still running its old config (or exited cleanly), the lamp never flickered, no temp file
is left and MQTT availability tells the truth. Real broker, real files, real PoseNet; mock pins."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from broker import Subscriber
from conftest import MODELS
from piposer import commands, config
from piposer.runtime.controller import App
from test_app import VIDEO, broker, lamp_config, run_with_timers  # noqa: F401  (broker is a fixture)

GOOD = f"""
[source]
source = "{VIDEO}"
[mqtt]
enabled = false
[[outputs]]
name = "lamp"
kind = "led"
pin = 17
"""
POSENET = MODELS / "converted_from_tfjs" / "posenet_mobilenet_v1_075_stride16_float.tflite"
TRUNCATED_MODEL = "posenet_truncated.tflite"


def bad_configs(tmp: Path) -> dict[str, tuple[bytes | None, list[str]]]:
    """(file bytes, words the command_failed error must contain) for each kind of bad config in `tmp`."""
    return {
        "not utf-8": (GOOD.encode() + b'[loop]\nname = "caf\xe9"\n', ["not UTF-8"]),
        "too deep": (GOOD.encode() + b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", ["nested"]),
        "toml syntax": (GOOD.encode() + b"[[outputs]\n", ["config.toml"]),
        "unknown key": (GOOD.encode() + b"[tracking]\nmax_agee = 2\n", ["config.toml", "max_agee"]),
        "out of range": (GOOD.encode() + b"[posenet]\nscore_threshold = 2.0\n", ["config.toml", "score_threshold"]),
        "absurd threads": (GOOD.encode() + b"[model]\nnum_threads = 100000\n", ["config.toml", "model.num_threads"]),
        "missing password file": (GOOD.replace("enabled = false", f'username = "pi"\npassword_file = '
                                               f'"{tmp / "nowhere"}"').encode(), ["config.toml", "password_file", "nowhere"]),
        "missing video": (GOOD.replace(str(VIDEO), str(tmp / "gone.mp4")).encode(), ["gone.mp4"]),
        "corrupt model": (GOOD.encode() + f'[model]\nname = "{tmp / TRUNCATED_MODEL}"\n'.encode(),
                          [TRUNCATED_MODEL, "truncated or corrupt"]),
        "unknown model": (GOOD.encode() + b'[model]\nname = "posenet-xl"\n', ["posenet-xl"]),
        "two outputs on one pin": (GOOD.encode() + b'[[outputs]]\nname = "fan"\nkind = "relay"\npin = 17\n',
                                   ["config.toml", "GPIO17"]),
        "file deleted": (None, ["config.toml"]),
    }


@pytest.mark.parametrize("kind", list(bad_configs(Path("tmp"))))
def test_a_bad_reload_changes_nothing(broker, tmp_path, kind):  # noqa: F811
    content, words = bad_configs(tmp_path)[kind]
    (tmp_path / TRUNCATED_MODEL).write_bytes(POSENET.read_bytes()[:100_000])
    path = tmp_path / "config.toml"
    if content is not None:
        path.write_bytes(content)
    factory = MockFactory()
    lines: list[str] = []
    with Subscriber(broker, "piposer/reload/#") as sub:
        with App(lamp_config(broker, "reload", release_after=600.0), load_config=lambda: config.load(path),
                 log=lines.append, pin_factory=factory) as app:
            assert app.run(max_frames=3) == "finished"
            lamp = factory.pin(17)
            before, pipeline = list(lamp.states), app.pipeline
            app.command(commands.ReloadConfig(request_id=kind))
            assert app.run(max_frames=6) == "finished"  # the old config goes on
            assert lamp.states == before and lamp.state is True and app.pipeline is pipeline
        failed = sub.wait_for("piposer/reload/events", where=lambda m: m.json()["event"] == "command_failed")
        availability = [m.payload.decode() for m in sub.on("piposer/reload/availability")]
    error = failed[0].json()["error"]
    assert failed[0].json()["id"] == kind and all(word in error for word in words), error
    assert "\n" not in error and "Traceback" not in error
    assert availability.count("online") == 1 and availability[-1] == "offline"  # offline only at the end
    assert lamp.state is False  # safe at close


@pytest.mark.parametrize("seed", range(4))
def test_signals_at_random_moments_of_run(broker, tmp_path, seed):  # noqa: F811
    """SIGHUP (a reload of a good config) and SIGTERM at seeded random moments, start-up included: exit 0,
    availability ends offline, the lamp ends safe, no temp file in the snapshot folder."""
    rng = random.Random(seed)
    hup, term = rng.uniform(0.1, 2.0), rng.uniform(0.1, 3.0)  # run() installs its handlers within 0.1 s
    cfg = lamp_config(broker, f"sig{seed}")
    cfg.loop.snapshot_dir = str(tmp_path / "snaps")
    path = tmp_path / "config.toml"
    path.write_text(GOOD.replace("enabled = false", f'host = "{broker.host}"\nport = {broker.port}\n'
                                 f'device_id = "sig{seed}"\ndiscovery = false'))
    factory = MockFactory()
    lines: list[str] = []
    with Subscriber(broker, f"piposer/sig{seed}/availability") as sub:
        code = run_with_timers(cfg, lambda: config.load(path), [(hup, signal.SIGHUP), (term, signal.SIGTERM)],
                               lines, pin_factory=factory)
        availability = [m.payload.decode() for m in sub.on(f"piposer/sig{seed}/availability")]
    assert code == 0, lines
    assert factory.pin(17).state is False
    assert not availability or availability[-1] == "offline", availability
    snaps = tmp_path / "snaps"
    assert not snaps.exists() or not [p for p in snaps.iterdir() if p.name.startswith(".")]
    assert not any(json.dumps(line).count("Traceback") for line in lines)
