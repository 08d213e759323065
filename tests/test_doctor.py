"""`piposer doctor` on this machine: the Pi camera is tests/fake_picamera2.py serving a real photo, GPIO is
gpiozero's mock pin factory, the broker is a real Mosquitto, the thermal sensor and vcgencmd are files the
test writes (the hardware edge); the model is real."""

from __future__ import annotations

import subprocess
import sys

import cv2
import pytest

import fake_picamera2
from broker import Broker, free_port
from conftest import DATA, ROOT
from piposer.modelstore import ModelStore
from piposer.tools import doctor

PHOTO = DATA / "tflite_pose_testdata" / "image3.jpeg"


@pytest.fixture
def camera(monkeypatch):
    return fake_picamera2.install(monkeypatch, [cv2.imread(str(PHOTO))])


@pytest.fixture
def thermal(tmp_path):
    path = tmp_path / "temp"
    path.write_text("48312\n")
    return path


@pytest.fixture
def mock_gpio(monkeypatch):
    from gpiozero import Device

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setattr(Device, "pin_factory", None)
    yield
    if Device.pin_factory is not None:
        Device.pin_factory.close()


def write_config(tmp_path, broker_port: int, extra: str = "") -> object:
    path = tmp_path / "config.toml"
    path.write_text(f'[source]\nsource = "picamera2"\n\n[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n'
                    f'device_id = "doc"\n\n[[outputs]]\nname = "lamp"\nkind = "relay"\npin = 17\n{extra}')
    return path


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_all_pass_on_a_healthy_setup(tmp_path, camera, thermal, mock_gpio):
    with Broker(tmp_path / "broker") as broker:
        checks = by_name(doctor.run_checks(write_config(tmp_path, broker.port), ModelStore.from_environment(),
                                           min_fps=1, thermal=thermal))
    assert [c.name for c in checks.values()] == ["config", "camera", "model", "fps", "temperature", "broker", "gpio"]
    assert all(c.ok for c in checks.values()), [c.line() for c in checks.values()]
    assert checks["camera"].detail == "picamera2 camera 0 (640x480 @ 30 fps): got a 640x480 frame"
    assert camera.instances[0].closed  # the camera is released again
    assert checks["model"].detail.startswith("posenet loaded in ")
    fps = float(checks["fps"].detail.split()[0])
    assert fps > 1 and checks["fps"].detail.endswith("(posenet, 640x480, model only)")
    assert checks["temperature"].detail == "CPU 48.3 °C"
    assert checks["broker"].detail == f"127.0.0.1:{broker.port} accepted the connection"
    assert checks["gpio"].detail == "GPIO17 usable (MockFactory)"
    assert checks["camera"].line() == "PASS  camera       picamera2 camera 0 (640x480 @ 30 fps): got a 640x480 frame"


def test_each_failure_is_one_line_with_its_reason(tmp_path, monkeypatch, thermal, mock_gpio):
    fake_picamera2.install(monkeypatch, [], cameras=[])
    from gpiozero import OutputDevice

    thermal.write_text("83500\n")
    holder = OutputDevice(17)  # another program holds the pin
    try:
        with Broker(tmp_path / "broker", users={"pi": "secret"}) as broker:
            path = write_config(tmp_path, broker.port)
            (tmp_path / "broken.tflite").write_bytes(b"not a model")
            path.write_text(path.read_text() + f'\n[model]\nname = "{tmp_path / "broken.tflite"}"\n')
            checks = by_name(doctor.run_checks(path, ModelStore.from_environment(), thermal=thermal))
    finally:
        holder.close()
    assert not any(c.ok for c in checks.values() if c.name != "config")
    assert checks["camera"].detail.startswith("source = 'picamera2': libcamera sees no camera")
    assert checks["config"].ok
    assert checks["model"].detail.startswith(f"model file {tmp_path / 'broken.tflite'}"), checks["model"].detail
    assert checks["fps"].detail == "no model to time"
    assert checks["temperature"].detail.startswith("CPU 83.5 °C: 80 °C or more, the Pi throttles")
    assert checks["broker"].detail == (f"127.0.0.1:{broker.port} refused the connection: Not authorized "
                                       "(check mqtt.username and the password)")
    assert checks["gpio"].detail.startswith("output 'lamp': cannot use GPIO17 as a relay:")
    assert "in use" in checks["gpio"].detail
    for check in checks.values():
        assert "\n" not in check.line()


def test_throttling_and_slow_model_and_absent_broker(tmp_path, camera, thermal, mock_gpio):
    vcgencmd = tmp_path / "vcgencmd"
    vcgencmd.write_text("#!/bin/sh\necho throttled=0x50005\n")
    vcgencmd.chmod(0o755)
    temperature = doctor.check_temperature(thermal, str(vcgencmd))
    assert not temperature.ok
    assert temperature.detail == ("CPU 48.3 °C, throttled=0x50005: under-voltage now, throttled now, under-voltage "
                                  "since boot, throttled since boot (check the power supply and cooling)")
    checks = by_name(doctor.run_checks(write_config(tmp_path, free_port()), ModelStore.from_environment(),
                                       min_fps=10_000, thermal=thermal))
    assert not checks["fps"].ok and "below 10000; choose a lighter model" in checks["fps"].detail
    assert checks["broker"].detail.endswith("not reachable: Connection refused")


def test_cli_prints_one_line_per_check_and_fails_when_one_fails(tmp_path):
    """The command itself on this x86 machine: no Pi camera, no thermal zone (or a real one), no GPIO library."""
    path = tmp_path / "config.toml"
    path.write_text(f'[source]\nsource = "{PHOTO}"\n\n[mqtt]\nport = {free_port()}\n')
    result = subprocess.run([sys.executable, "-m", "piposer", "doctor", "--config", str(path), "--min-fps", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["config", "camera", "model", "fps", "temperature", "broker", "gpio"]
    assert lines[1].startswith("PASS  camera ") and lines[2].startswith("PASS  model ")
    assert lines[5].startswith("FAIL  broker       localhost:") and "not reachable" in lines[5]
    assert result.returncode == 1
