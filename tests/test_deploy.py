"""`make deploy` for real: an OpenSSH server on a loopback port (throwaway host key, client key and
authorized_keys) receives the project over rsync and runs deploy/install.sh into a temp prefix,
with the apt and systemd steps switched off (PIPOSER_SKIP_APT=1, PIPOSER_SKIP_SYSTEMD=1).
Also: shellcheck on the shell scripts, and `systemd-analyze verify` on the unit.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from broker import free_port
from conftest import MODELS, ROOT

SSHD = "/usr/sbin/sshd"
MODEL_FILE = MODELS / "converted_from_tfjs" / "posenet_mobilenet_v1_075_stride16_float.tflite"


def need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t) and not Path(t).exists()]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (make test-deps)")


@contextlib.contextmanager
def sshd_server(d: Path):
    """A non-daemon sshd on 127.0.0.1 that lets the current user in with a fresh key; yields SSH options."""
    need(SSHD, "ssh", "ssh-keygen", "rsync")
    d.mkdir()
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not start: {server.stderr.read() if server.poll() is not None else 'timeout'}")
            time.sleep(0.05)
    try:
        yield (f"-p {port} -i {d / 'client_key'} -o IdentitiesOnly=yes -o BatchMode=yes "
               "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def sshd(tmp_path):
    with sshd_server(tmp_path / "ssh") as opts:
        yield opts


def make_deploy(ssh_opts: str, prefix: Path, remote: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", "deploy", f"HOST={getpass.getuser()}@127.0.0.1", f"SSH_OPTS={ssh_opts}",
         f"REMOTE_DIR={remote}", f"DEPLOY_PREFIX={prefix}", "PIPOSER_SKIP_APT=1", "PIPOSER_SKIP_SYSTEMD=1",
         f"PIPOSER_MODEL={MODEL_FILE}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def test_make_deploy_installs_over_ssh_and_is_idempotent(sshd, tmp_path):
    need("make")
    prefix, remote = tmp_path / "root", tmp_path / "remote-src"
    result = make_deploy(sshd, prefix, remote)
    assert result.returncode == 0, result.stdout + result.stderr

    app = prefix / "opt/piposer"
    # code: copied without the developer's venv or git history
    assert (app / "src/piposer/runtime/controller.py").read_bytes() == (ROOT / "piposer/runtime/controller.py").read_bytes()
    assert (app / "src/models/manifest.toml").is_file()
    assert not (app / "src/.git").exists() and not (app / "src/.venv").exists()
    # venv: sees the system packages (apt's picamera2 on a Pi) and has piposer installed from the copy
    assert "include-system-site-packages = true" in (app / "venv/pyvenv.cfg").read_text()
    assert (app / "venv/bin/piposer").is_file()
    probe = subprocess.run(
        [app / "venv/bin/python", "-c", "import piposer.runtime.controller, piposer.sources; print(piposer.runtime.controller.__file__)"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(app / "venv/lib"))
    # config, unit and model where the service expects them
    config = prefix / "etc/piposer/config.toml"
    assert config.read_text() == (ROOT / "deploy/config.toml").read_text()
    assert config.stat().st_mode & 0o777 == 0o640
    assert (prefix / "etc/systemd/system/piposer.service").read_text() == (ROOT / "deploy/piposer.service").read_text()
    model = prefix / "var/lib/piposer/models" / MODEL_FILE.name
    assert hashlib.sha256(model.read_bytes()).hexdigest() == hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest()
    assert "systemd steps skipped" in result.stdout and "apt skipped" in result.stdout

    # again: the user's config edits survive, the venv is reused, stale code is removed
    config.write_text(config.read_text() + "\n# edited on the Pi\n")
    venv_cfg_mtime = (app / "venv/pyvenv.cfg").stat().st_mtime_ns
    (app / "src/piposer/stale.py").write_text("")
    again = make_deploy(sshd, prefix, remote)
    assert again.returncode == 0, again.stdout + again.stderr
    assert config.read_text().endswith("# edited on the Pi\n")
    assert "keeping existing" in again.stdout
    assert (app / "venv/pyvenv.cfg").stat().st_mtime_ns == venv_cfg_mtime
    assert not (app / "src/piposer/stale.py").exists()


def test_deploy_without_host_says_how():
    need("make")
    result = subprocess.run(["make", "-s", "deploy", "HOST="], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "usage: make deploy HOST=user@" in result.stdout


def test_fleet_deploys_in_parallel_with_per_host_config_and_names_the_failure(tmp_path):
    """Two sshd targets get their own config from one inventory at the same time; a third, unreachable,
    fails loudly in the summary and the exit code."""
    from piposer import config

    need("make")
    with sshd_server(tmp_path / "ssh-a") as ssh_a, sshd_server(tmp_path / "ssh-b") as ssh_b:
        user = getpass.getuser()
        inventory = tmp_path / "fleet.toml"
        inventory.write_text(f"""
[defaults]
env = {{ PIPOSER_SKIP_APT = 1, PIPOSER_SKIP_SYSTEMD = 1, PIPOSER_MODEL = "{MODEL_FILE}" }}
[defaults.config.mqtt]
host = "broker.lan"
[defaults.config.loop]
max_fps = 12

[hosts.kitchen]
address = "{user}@127.0.0.1"
ssh_opts = "{ssh_a}"
location = "Kitchen"
env = {{ DEPLOY_PREFIX = "{tmp_path / 'kitchen'}", REMOTE_DIR = "{tmp_path / 'src-kitchen'}" }}
[hosts.kitchen.config.source]
source = "/dev/video1"

[hosts.hall]
address = "{user}@127.0.0.1"
ssh_opts = "{ssh_b}"
device_id = "hall-door"
env = {{ DEPLOY_PREFIX = "{tmp_path / 'hall'}", REMOTE_DIR = "{tmp_path / 'src-hall'}" }}
[hosts.hall.config.loop]
max_fps = 5

[hosts.attic]
address = "{user}@127.0.0.1"
ssh_opts = "-p {free_port()} -o BatchMode=yes -o ConnectTimeout=5"
""")
        result = subprocess.run(["make", "-s", "deploy", f"FLEET={inventory}", f"PYTHON={sys.executable}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode != 0
    summary = result.stdout[result.stdout.index("fleet deploy: 2 of 3 hosts ok, 1 FAILED"):].splitlines()
    assert [line.split()[0] for line in summary[1:]] == ["kitchen", "hall", "attic"]
    assert summary[1].endswith(" ok") and summary[2].endswith(" ok")
    assert "FAILED (exit 2)" in summary[3] and "Connection refused" in summary[3]

    kitchen = config.load(tmp_path / "kitchen/etc/piposer/config.toml", check_files=False)
    hall = config.load(tmp_path / "hall/etc/piposer/config.toml", check_files=False)
    assert (kitchen.mqtt.device_id, kitchen.mqtt.area, kitchen.mqtt.host) == ("kitchen", "Kitchen", "broker.lan")
    assert (kitchen.source.source, kitchen.loop.max_fps) == ("/dev/video1", 12)
    assert (hall.mqtt.device_id, hall.mqtt.area, hall.mqtt.host) == ("hall-door", "", "broker.lan")
    assert (hall.source.source, hall.loop.max_fps) == ("auto", 5)
    for prefix in ("kitchen", "hall"):
        assert (tmp_path / prefix / "opt/piposer/venv/bin/piposer").is_file()
        # the per-host config (it may hold a password) is not left in the installed code, nor readable by others
        assert not (tmp_path / prefix / "opt/piposer/src/deploy/host-config.toml").exists()
        assert (tmp_path / f"src-{prefix}/deploy/host-config.toml").stat().st_mode & 0o077 == 0


def test_fleet_rejects_a_bad_inventory_naming_the_key(tmp_path):
    inventory = tmp_path / "fleet.toml"
    inventory.write_text('[hosts.kitchen]\naddress = "pi@kitchen.local"\nlocaton = "Kitchen"\n')
    result = subprocess.run([sys.executable, str(ROOT / "deploy/fleet.py"), "--inventory", str(inventory)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"fleet.py: error: {inventory}: hosts.kitchen.locaton is not a setting")
    assert len(result.stderr.strip().splitlines()) == 1


def test_fleet_example_inventory_writes_valid_configs(tmp_path):
    """deploy/fleet.toml, as shipped, gives each host a config that piposer loads with the intended values."""
    from piposer import config

    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        import fleet
    finally:
        sys.path.remove(str(ROOT / "deploy"))
    hosts = {h.name: h for h in fleet.read_inventory(ROOT / "deploy/fleet.toml")}
    assert list(hosts) == ["kitchen", "hall", "studio"]
    loaded = {}
    for name, host in hosts.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(fleet.toml_text(host.config))
        assert tomllib.loads(path.read_text()) == host.config  # the writer round-trips
        loaded[name] = config.load(path, check_files=False)
    assert [(c.mqtt.device_id, c.mqtt.area) for c in loaded.values()] == [
        ("kitchen", "Kitchen"), ("hall-door", "Hall"), ("studio", "")]
    assert loaded["hall"].source.source == "/dev/video0" and loaded["kitchen"].source.source == "auto"
    assert loaded["studio"].model.name == "movenet-multipose" and loaded["studio"].loop.max_fps == 15
    assert hosts["studio"].env == {"PIPOSER_LITERT": "1", "PIPOSER_WITH_MOSQUITTO": "1"}
    assert hosts["studio"].ssh_opts.startswith("-p 2222")


def test_shell_scripts_pass_shellcheck():
    need("shellcheck")
    scripts = [ROOT / "deploy/install.sh", ROOT / ".ci/run", *sorted((ROOT / "deploy/emulated-pi").glob("*.sh"))]
    result = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """verify insists the ExecStart binary exists, so a temp copy points it at /bin/true; everything else is checked as is."""
    need("systemd-analyze")
    text = (ROOT / "deploy/piposer.service").read_text()
    exec_start = "ExecStart=/opt/piposer/venv/bin/piposer run --config /etc/piposer/config.toml"
    assert exec_start in text
    unit = tmp_path / "piposer.service"
    unit.write_text(text.replace(exec_start, "ExecStart=/bin/true run --config /etc/piposer/config.toml"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # unknown or misspelt keys are only warnings: there must be none for our unit
    assert "piposer.service" not in result.stderr, result.stderr
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=piposer", "SupplementaryGroups=video gpio",
                "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"):
        assert key in text


def test_camera_reopen_backoff_fits_inside_the_watchdog():
    """The capture thread's longest wait between reopen attempts must leave room for several attempts
    before systemd's watchdog (fed only while frames arrive) restarts the service."""
    from piposer.sources import SourceSettings

    unit = (ROOT / "deploy" / "piposer.service").read_text()
    (watchdog,) = [float(line.split("=", 1)[1]) for line in unit.splitlines() if line.startswith("WatchdogSec=")]
    assert SourceSettings().reopen_max * 2 < watchdog
