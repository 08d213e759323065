"""The Raspberry Pi path on arm64, for real: deploy/emulated-pi/ boots an arm64 Debian Bookworm root under
qemu-user with systemd as PID 1 (systemd-nspawn), `make deploy` installs into it over SSH with nothing
switched off but what plain Debian lacks (python3-picamera2, Raspberry Pi OS's apt repository), and the
service runs under that systemd against a Mosquitto broker on this machine.

Slow (the first run builds the root, every run pip-installs aarch64 wheels under emulation) and root-only,
so it runs only with PIPOSER_ARM64=1: `make test-arm64`. Timings and the emulated fps are printed (-s);
they are emulation figures, not a Pi's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker import Broker, Subscriber, free_port
from conftest import DATA, MODELS, ROOT

pytestmark = pytest.mark.skipif(
    os.environ.get("PIPOSER_ARM64") != "1" or os.geteuid() != 0,
    reason="the emulated Pi needs root and minutes: make test-arm64 (PIPOSER_ARM64=1)",
)

BOOT = ROOT / "deploy/emulated-pi/boot.sh"
MODEL_FILE = MODELS / "converted_from_tfjs" / "posenet_mobilenet_v1_075_stride16_float.tflite"
VIDEO = DATA / "video/room_pair.mp4"
PHOTO = DATA / "tflite_pose_testdata/image2.jpeg"


def timed(what: str, started: float) -> float:
    took = time.monotonic() - started
    print(f"\n[arm64] {what}: {took:.1f} s")
    return took


@dataclass
class Pi:
    """A booted emulated Pi: `ssh(...)` runs a command on it as user pi."""

    name: str
    port: int
    key: Path

    @property
    def ssh_opts(self) -> str:
        return (f"-p {self.port} -i {self.key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
                "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")

    def ssh(self, command: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(["ssh", *self.ssh_opts.split(), "pi@127.0.0.1", command],
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        return result.stdout

    def unit(self, *props: str) -> dict[str, str]:
        out = self.ssh(f"systemctl show piposer.service -p {','.join(props)}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_unit(self, timeout: float, **want: str) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.unit(*want, "MainPID", "NRestarts")
            if all(state.get(k) == v for k, v in want.items()):
                return state
            assert time.monotonic() < deadline, f"piposer.service never reached {want}: {state}"
            time.sleep(1)


def boot(name: str) -> Pi:
    port = free_port()
    started = time.monotonic()
    result = subprocess.run(["bash", str(BOOT), "start", name, str(port), f"--bind-ro={DATA.parent}"],
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr
    timed(f"build (if not cached) and boot of {name}", started)
    key = Path(re.search(r"-i (\S+) ", result.stderr).group(1))
    return Pi(name, port, key)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture(scope="module")
def pi():
    booted = boot("pi-arm64-a")
    yield booted
    subprocess.run(["bash", str(BOOT), "stop", booted.name], timeout=120)


def service_config(broker: Broker, **mqtt: str) -> str:
    """The emulated Pi has no camera: the service reads the room video, looping, and talks to our broker."""
    extra = "".join(f'{k} = "{v}"\n' for k, v in mqtt.items())
    return (f'[source]\nsource = "{VIDEO}"\nloop = true\n\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n{extra}\n'
            "[loop]\nstats_interval = 5\n")


def make_deploy(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "--no-print-directory", "deploy", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def deployed(pi, broker, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "config.toml"
    config.write_text(service_config(broker))
    with Subscriber(broker, f"piposer/{pi.name}/#") as sub:
        started = time.monotonic()
        result = make_deploy("HOST=pi@127.0.0.1", f"SSH_OPTS={pi.ssh_opts}", f"DEPLOY_CONFIG={config}",
                             f"PIPOSER_MODEL={MODEL_FILE}")
        timed("make deploy (apt, aarch64 wheels, service start) under emulation", started)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        yield result, sub


def test_installer_says_what_plain_debian_lacks_and_goes_on(deployed):
    result, _ = deployed
    assert "Raspberry Pi OS apt repository not configured" in result.stdout
    assert "python3-picamera2 is not available here" in result.stdout
    assert "apt packages: python3 python3-venv python3-pip python3-numpy rsync" in result.stdout
    assert "service started" in result.stdout


def test_aarch64_wheels_installed(pi, deployed):
    """tflite-runtime and OpenCV come as manylinux aarch64 wheels; numpy<2 is Debian's python3-numpy, which
    the venv sees (--system-site-packages) and pip keeps, exactly as on Raspberry Pi OS."""
    probe = pi.ssh("/opt/piposer/venv/bin/python - <<'PY'\n"
                   "import json, platform, numpy, cv2, tflite_runtime\n"
                   "from importlib.metadata import distribution\n"
                   "tags = {d: [l for l in distribution(d).read_text('WHEEL').splitlines() if l.startswith('Tag:')]\n"
                   "        for d in ('opencv-python-headless', 'tflite-runtime')}\n"
                   "print(json.dumps({'machine': platform.machine(), 'numpy': numpy.__version__, 'numpy_at': numpy.__file__,\n"
                   "                  'cv2': cv2.__version__, 'tflite': tflite_runtime.__version__, 'tags': tags}))\n"
                   "PY")
    info = json.loads(probe)
    print(f"\n[arm64] wheels: {info}")
    assert info["machine"] == "aarch64"
    assert int(info["numpy"].split(".")[0]) == 1  # tflite-runtime 2.14 needs numpy<2
    assert info["numpy_at"].startswith("/usr/lib/python3/dist-packages/")
    assert info["tflite"] == "2.14.0"
    for dist, tags in info["tags"].items():
        assert tags and all(t.endswith("_aarch64") for t in tags), (dist, tags)


def test_service_is_notify_ready_and_feeds_the_watchdog(pi, deployed):
    _, sub = deployed
    state = pi.unit("Type", "ActiveState", "SubState", "WatchdogUSec", "WatchdogTimestampMonotonic", "StatusText")
    assert (state["Type"], state["ActiveState"], state["SubState"]) == ("notify", "active", "running")
    assert state["WatchdogUSec"] == "30s"
    sub.wait_for(f"piposer/{pi.name}/availability", where=lambda m: m.payload == b"online", timeout=30)
    # the first stats may come before the first frame is through the model (slow under emulation)
    stats = sub.wait_for(f"piposer/{pi.name}/stats", where=lambda m: m.json()["fps"] > 0, timeout=120)[-1].json()
    print(f"\n[arm64] emulated stats (not a Pi figure): fps {stats['fps']}, stages {stats.get('stages_ms')}")
    first = int(state["WatchdogTimestampMonotonic"])
    deadline = time.monotonic() + 40  # WatchdogSec=30: fed at least every 15 s while frames advance
    while int(pi.unit("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]) == first:
        assert time.monotonic() < deadline, "the watchdog was not fed for 40 s"
        time.sleep(2)
    assert pi.unit("ActiveState")["ActiveState"] == "active"


def test_stop_publishes_offline_and_kill_leads_to_a_restart(pi, deployed):
    _, sub = deployed
    topic = f"piposer/{pi.name}/availability"
    offline_before = sum(m.payload == b"offline" for m in sub.on(topic))
    pi.ssh("sudo systemctl stop piposer")
    sub.wait_for(topic, count=offline_before + 1, where=lambda m: m.payload == b"offline", timeout=30)
    assert pi.unit("ActiveState")["ActiveState"] == "inactive"

    pi.ssh("sudo systemctl start piposer", timeout=300)
    before = pi.wait_unit(30, ActiveState="active", SubState="running")
    pi.ssh("sudo systemctl kill -s KILL piposer")
    deadline = time.monotonic() + 300
    while True:
        after = pi.unit("ActiveState", "SubState", "MainPID", "NRestarts")
        if int(after["NRestarts"]) > int(before["NRestarts"]) and after["SubState"] == "running":
            break
        assert time.monotonic() < deadline, f"no restart after SIGKILL: {after}"
        time.sleep(1)
    assert after["MainPID"] != before["MainPID"]
    journal = pi.ssh("sudo journalctl -u piposer --no-pager -o cat")
    assert "status=9/KILL" in journal


def photo_keypoints(doc: dict) -> list[tuple[str, float, float]]:
    return [(name, k["x"], k["y"]) for p in doc["poses"] for name, k in sorted(p["keypoints"].items())]


def test_photo_on_arm64_matches_x86(pi, deployed, tmp_path):
    started = time.monotonic()
    # the same defaults on both sides: an empty config, not the service's
    pi.ssh(f"cd /tmp && : >empty.toml && PIPOSER_MODEL_DIR=/var/lib/piposer/models /opt/piposer/venv/bin/piposer "
           f"image --config empty.toml --model posenet --overlay none --overwrite --out /tmp/photo {PHOTO}", timeout=300)
    timed("piposer image on arm64 (startup included)", started)
    arm = json.loads(pi.ssh(f"cat /tmp/photo/{PHOTO.stem}.json"))
    (tmp_path / "empty.toml").write_text("")
    x86 = subprocess.run([sys.executable, "-m", "piposer", "image", "--config", str(tmp_path / "empty.toml"),
                          "--model", "posenet", "--overlay", "none",
                          "--out", str(tmp_path), str(PHOTO)], cwd=ROOT, capture_output=True, text=True)
    assert x86.returncode == 0, x86.stderr
    here = json.loads((tmp_path / f"{PHOTO.stem}.json").read_text())
    assert len(arm["poses"]) == len(here["poses"]) >= 1
    a, b = photo_keypoints(arm), photo_keypoints(here)
    assert [k[0] for k in a] == [k[0] for k in b]
    worst = max(max(abs(p[1] - q[1]), abs(p[2] - q[2])) for p, q in zip(a, b))
    print(f"\n[arm64] photo: {len(a)} keypoints, largest arm64/x86 difference {worst:.2f} px")
    assert worst <= 0.5


@pytest.fixture
def second_pi():
    booted = boot("pi-arm64-b")
    yield booted
    subprocess.run(["bash", str(BOOT), "stop", booted.name], timeout=120)


def test_fleet_deploys_two_emulated_pis_at_once(pi, second_pi, deployed, broker, tmp_path):
    """One inventory, two arm64 containers deployed in parallel, each with its own device id and room."""
    defaults = service_config(broker).replace("[", "[defaults.config.")
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(f"""[defaults]
env = {{ PIPOSER_MODEL = "{MODEL_FILE}" }}

{defaults}
[hosts.kitchen]
address = "pi@127.0.0.1"
ssh_opts = "{pi.ssh_opts}"
location = "Kitchen"

[hosts.hall]
address = "pi@127.0.0.1"
ssh_opts = "{second_pi.ssh_opts}"
device_id = "hall-door"
location = "Hall"
""")
    with Subscriber(broker, "homeassistant/#", "piposer/+/availability") as sub:
        started = time.monotonic()
        result = make_deploy(f"FLEET={inventory}", f"PYTHON={sys.executable}")
        timed("fleet deploy of two emulated Pis (one updated, one fresh) in parallel", started)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        summary = result.stdout[result.stdout.index("fleet deploy: 2 of 2 hosts ok"):].splitlines()
        assert [line.split()[0] for line in summary[1:]] == ["kitchen", "hall"]
        for device, area in (("kitchen", "Kitchen"), ("hall-door", "Hall")):
            sub.wait_for(f"piposer/{device}/availability", where=lambda m: m.payload == b"online", timeout=60)
            presence = sub.wait_for(f"homeassistant/binary_sensor/{device}/presence/config", timeout=30)[-1].json()
            assert presence["device"]["suggested_area"] == area
            assert presence["state_topic"] == f"piposer/{device}/state"
    for box, device in ((pi, "kitchen"), (second_pi, "hall-door")):
        assert f'device_id = "{device}"' in box.ssh("sudo cat /etc/piposer/config.toml")
        # two emulated services and a pip install on two shared cores: a frame can take longer than the
        # watchdog allows, and systemd then restarts the service, as it should; it must come back
        state = box.wait_unit(300, ActiveState="active", SubState="running")
        print(f"\n[arm64] {device}: running, {state['NRestarts']} restarts since the fleet deploy")
