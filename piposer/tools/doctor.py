"""`piposer doctor`: the hardware checklist to run on the Pi itself, one PASS/FAIL line per check with the reason.

Checks the config, the camera (one frame), the model (loads, then its fps on that frame), the CPU temperature
and throttling, the MQTT broker (connect and CONNACK) and GPIO access. Run it with the service stopped: the
service holds the camera and the GPIO pins.
"""

from __future__ import annotations

import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PiposerError
from ..sinks.payloads import THERMAL_ZONE

HOT_C = 80.0  # a Pi 4 starts throttling its clock here
# vcgencmd get_throttled bits: now (0-3) and since boot (16-19)
THROTTLED_BITS = {0x1: "under-voltage now", 0x2: "ARM clock capped now", 0x4: "throttled now",
                  0x8: "soft temperature limit now", 0x10000: "under-voltage since boot",
                  0x20000: "clock capped since boot", 0x40000: "throttled since boot",
                  0x80000: "soft temperature limit since boot"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:12} {self.detail}"


def _within(seconds: float, work):
    """`work()`'s result, or a PiposerError when it takes longer (a camera that never delivers a frame)."""
    box: dict = {}

    def run():
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise PiposerError(f"no answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def check_camera(cfg) -> tuple[Check, np.ndarray | None]:
    from ..sources.devices import device_for

    try:
        device = device_for(cfg.source, log=lambda *_: None)
    except PiposerError as exc:
        return Check("camera", False, str(exc)), None

    def grab():
        device.open()
        try:
            return device.read()
        finally:
            device.close()

    try:
        image = _within(15, grab)
    except Exception as exc:  # noqa: BLE001 - whatever the camera library raised is the reason
        return Check("camera", False, f"{device.description}: {exc or type(exc).__name__}"), None
    if image is None:
        return Check("camera", False, f"{device.description}: opened, but gave no frame"), None
    return Check("camera", True, f"{device.description}: got a {image.shape[1]}x{image.shape[0]} frame"), image


def check_model(cfg, store):
    from ..estimators import create

    started = time.monotonic()
    try:
        estimator = create(cfg, running_mode="video", store=store)
    except PiposerError as exc:
        return Check("model", False, str(exc)), None
    return Check("model", True, f"{estimator.model_name} loaded in {time.monotonic() - started:.1f} s"), estimator


def check_fps(estimator, image: np.ndarray | None, cfg, min_fps: float, seconds: float = 3.0) -> Check:
    """Frames per second of the model alone on the camera's frame (a blank one if the camera failed)."""
    from ..types import Frame

    if image is None:
        image = np.zeros((cfg.source.height, cfg.source.width, 3), np.uint8)
    estimator.estimate(Frame(image, 0, time.monotonic(), time.time()))  # the first run allocates
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        estimator.estimate(Frame(image, count, time.monotonic(), time.time()))
        count += 1
    fps = count / (time.monotonic() - started)
    detail = f"{fps:.1f} fps ({estimator.model_name}, {image.shape[1]}x{image.shape[0]}, model only)"
    if fps < min_fps:
        return Check("fps", False, f"{detail}: below {min_fps:g}; choose a lighter model or a smaller input")
    return Check("fps", True, detail)


def check_temperature(thermal: Path = THERMAL_ZONE, vcgencmd: str = "vcgencmd") -> Check:
    try:
        celsius = int(thermal.read_text().strip()) / 1000
    except (OSError, ValueError) as exc:
        return Check("temperature", False, f"cannot read {thermal}: {getattr(exc, 'strerror', None) or exc} (not a Pi?)")
    detail = f"CPU {celsius:.1f} °C"
    try:
        out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
        flags = int(out.strip().split("=")[1], 16)
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        flags = None
    problems = [] if flags is None else [text for bit, text in THROTTLED_BITS.items() if flags & bit]
    if flags is not None:
        detail += f", throttled=0x{flags:x}"
    if celsius >= HOT_C:
        return Check("temperature", False, f"{detail}: {HOT_C:g} °C or more, the Pi throttles; fit a heatsink or fan")
    if problems:
        return Check("temperature", False, f"{detail}: {', '.join(problems)} (check the power supply and cooling)")
    return Check("temperature", True, detail)


def check_broker(settings, timeout: float = 5.0) -> Check:
    """Connect with the service's settings (credentials, TLS) under a client id of its own, so a running
    service is not kicked off the broker, and wait for the broker's CONNACK."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from ..sinks.mqtt import _hint, _set_tls

    if not settings.enabled:
        return Check("broker", True, "MQTT disabled in the config ([mqtt] enabled = false)")
    where = f"{settings.host}:{settings.port}"
    answered, result = threading.Event(), {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["code"] = reason_code
        answered.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"piposer-doctor-{settings.device}",
                         protocol=mqtt.MQTTv311)
    client.on_connect = on_connect
    try:
        if settings.username:
            client.username_pw_set(settings.username, settings.resolve_password())
        if settings.tls:
            _set_tls(client, settings)
        client.connect(settings.host, settings.port, keepalive=10)
    except PiposerError as exc:
        return Check("broker", False, str(exc))
    except OSError as exc:
        return Check("broker", False, f"{where} not reachable: {exc.strerror or exc}")
    client.loop_start()
    try:
        if not answered.wait(timeout):
            return Check("broker", False, f"{where}: no answer to CONNECT within {timeout:g} s")
        code = result["code"]
        if code.is_failure:
            return Check("broker", False, f"{where} refused the connection: {code}{_hint(code)}")
        return Check("broker", True, f"{where} accepted the connection{' (TLS)' if settings.tls else ''}")
    finally:
        client.disconnect()
        client.loop_stop()


def check_gpio(outputs) -> Check:
    """The configured output pins, opened at their safe values and released; without outputs, whether
    gpiozero finds a pin library at all."""
    from gpiozero import Device
    from gpiozero.exc import PinFactoryFallback

    from ..sinks.gpio import _build, _why

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PinFactoryFallback)  # one warning per library tried; the line says it
        try:
            if not outputs:
                Device.ensure_pin_factory()
                return Check("gpio", True, f"pin library {type(Device.pin_factory).__name__} (no [[outputs]] configured)")
            opened = []
            try:
                for settings in outputs:
                    opened.append(_build(settings, None))
            finally:
                for device in opened:
                    device.close()
            pins = ", ".join(f"GPIO{o.pin}" for o in outputs)
            return Check("gpio", True, f"{pins} usable ({type(Device.pin_factory).__name__})")
        except PiposerError as exc:
            return Check("gpio", False, str(exc))
        except Exception as exc:  # noqa: BLE001 - gpiozero's own exceptions name the pin problem
            return Check("gpio", False, _why(exc))


def run_checks(config_path: Path | None, store, min_fps: float = 5.0, thermal: Path = THERMAL_ZONE) -> list[Check]:
    from .. import config

    try:
        cfg = config.load(config_path)
        checks = [Check("config", True, str(config_path or "built-in defaults"))]
    except PiposerError as exc:
        cfg = config.Config()
        checks = [Check("config", False, f"{exc} (the other checks use the defaults)")]
    camera, image = check_camera(cfg)
    model, estimator = check_model(cfg, store)
    checks += [camera, model]
    if estimator is None:
        checks.append(Check("fps", False, "no model to time"))
    else:
        try:
            checks.append(check_fps(estimator, image, cfg, min_fps))
        finally:
            estimator.close()
    checks += [check_temperature(thermal), check_broker(cfg.mqtt), check_gpio(cfg.outputs)]
    return checks
