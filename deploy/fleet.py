#!/usr/bin/env python3
"""Deploy to several Pis at once: `make deploy HOSTS="pi@a pi@b"` or `make deploy FLEET=deploy/fleet.toml`.

Runs one `make deploy HOST=...` per host in parallel, each with its own log, and prints a per-host summary;
exits non-zero when any host failed. With an inventory, each host gets a config written from it (device id,
location and config overrides) that replaces its /etc/piposer/config.toml. Standard library only, so it
runs with the computer's python3 (3.11 or later) and no venv.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST_KEYS = {"address", "device_id", "location", "ssh_opts", "env", "config"}
DEFAULT_KEYS = {"ssh_opts", "env", "config"}
# make variables an inventory may set per host: the installer's switches and where things go
SWITCH = re.compile(r"PIPOSER_[A-Z_]+|REMOTE_DIR|DEPLOY_PREFIX")

# lines that follow a failure without naming it
GENERIC = re.compile(r"make(\[\d+\])?: \*\*\*|rsync error:|rsync: connection unexpectedly closed")


class InventoryError(Exception):
    """A bad inventory: the message names the file and the key."""


@dataclass
class Host:
    """One Pi: where to reach it and what to install there; `config` is None when the Pi keeps its own."""

    name: str
    address: str
    ssh_opts: str = ""
    env: dict[str, str] = field(default_factory=dict)
    config: dict | None = None


def merged(base: dict, over: dict) -> dict:
    """`over` laid on `base`, tables merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InventoryError(f"{where}.{key} must be a table")
    return value


def _env(data: dict, where: str) -> dict[str, str]:
    env = _table(data, "env", where)
    for key, value in env.items():
        if not SWITCH.fullmatch(key):
            raise InventoryError(f"{where}.env.{key}: only the installer's PIPOSER_* switches, REMOTE_DIR and DEPLOY_PREFIX can be set")
        if not isinstance(value, (str, int, bool)):
            raise InventoryError(f"{where}.env.{key} must be a string, number or boolean")
    return {k: str(int(v) if isinstance(v, bool) else v) for k, v in env.items()}


def read_inventory(path: Path) -> list[Host]:
    """The hosts of an inventory file ([defaults] laid under each [hosts.NAME])."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path}: {exc}") from None
    for key in set(data) - {"defaults", "hosts"}:
        raise InventoryError(f"{path}: unknown table '{key}' (expected defaults, hosts)")
    defaults = _table(data, "defaults", "")
    for key in set(defaults) - DEFAULT_KEYS:
        raise InventoryError(f"{path}: defaults.{key} is not a setting (expected {', '.join(sorted(DEFAULT_KEYS))})")
    hosts = _table(data, "hosts", "")
    if not hosts:
        raise InventoryError(f"{path}: no [hosts.NAME] tables")
    out = []
    for name, entry in hosts.items():
        where = f"hosts.{name}"
        if not isinstance(entry, dict):
            raise InventoryError(f"{path}: {where} must be a table")
        for key in set(entry) - HOST_KEYS:
            raise InventoryError(f"{path}: {where}.{key} is not a setting (expected {', '.join(sorted(HOST_KEYS))})")
        if not isinstance(entry.get("address"), str) or not entry["address"]:
            raise InventoryError(f"{path}: {where}.address is missing (e.g. address = \"pi@{name}.local\")")
        try:
            config = merged(_table(defaults, "config", "defaults"), _table(entry, "config", where))
            mqtt = {"device_id": str(entry.get("device_id", name))}
            if entry.get("location"):
                mqtt["area"] = str(entry["location"])  # the room: Home Assistant's suggested area
            config["mqtt"] = merged(_table(config, "mqtt", f"{where}.config"), mqtt)
            env = {**_env(defaults, "defaults"), **_env(entry, where)}
        except InventoryError as exc:
            raise InventoryError(f"{path}: {exc}".replace(": .", ": ")) from None
        ssh_opts = entry.get("ssh_opts", defaults.get("ssh_opts", ""))
        out.append(Host(name, entry["address"], str(ssh_opts), env, config))
    return out


def hosts_from_list(addresses: list[str]) -> list[Host]:
    """`HOSTS="pi@kitchen.local pi@hall.local"`: named by their address; each keeps its own config."""
    return [Host(a, a) for a in addresses]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    raise InventoryError(f"cannot write {value!r} to a config file")


def toml_text(config: dict, prefix: str = "") -> str:
    """A config dict as TOML: plain keys first, then one [table] per nested dict (arrays of tables kept)."""
    plain = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not any(isinstance(x, dict) for x in v))]
    parts = ["\n".join(plain)] if plain else []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            parts.append(f"[{name}]\n" + toml_text(value, f"{name}.").strip("\n"))
        elif isinstance(value, list) and any(isinstance(x, dict) for x in value):
            parts.extend(f"[[{name}]]\n" + toml_text(item, f"{name}.").strip("\n") for item in value)
    return "\n\n".join(p for p in parts if p) + "\n"


@dataclass
class Result:
    host: Host
    returncode: int
    seconds: float
    log: Path

    def reason(self) -> str:
        """The log's last line that says something: not make's or rsync's generic lines after the real error."""
        lines = [line for line in self.log.read_text(errors="replace").splitlines()
                 if line.strip() and not GENERIC.match(line)]
        return lines[-1].strip() if lines else ""


def deploy(host: Host, logs: Path, make: str) -> Result:
    """`make deploy HOST=...` for one host, its output in logs/<name>.log."""
    stem = re.sub(r"[^\w.-]", "_", host.name)
    log = logs / f"{stem}.log"
    args = [make, "--no-print-directory", "-C", str(ROOT), "deploy", "HOSTS=", "FLEET=", f"HOST={host.address}"]
    if host.ssh_opts:
        args.append(f"SSH_OPTS={host.ssh_opts}")
    if host.config is not None:
        config = logs / f"{stem}.config.toml"
        config.touch(mode=0o600)  # it may hold a password; rsync keeps the mode on the Pi
        config.write_text(f"# written by `make deploy FLEET=...` for {host.name}: edit the inventory, not this file\n\n"
                          + toml_text(host.config))
        args.append(f"DEPLOY_CONFIG={config}")
    args += [f"{k}={v}" for k, v in host.env.items()]
    started = time.monotonic()
    with log.open("w") as out:
        try:
            code = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        except OSError as exc:
            print(f"cannot run {make}: {exc.strerror}", file=out)
            code = 127
    return Result(host, code, time.monotonic() - started, log)


def summary(results: list[Result]) -> str:
    width = max(len(r.host.name) for r in results)
    lines = []
    for r in results:
        state = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
        tail = "" if r.returncode == 0 else f": {r.reason()}  [log: {r.log}]"
        lines.append(f"  {r.host.name:{width}}  {r.host.address:24}  {r.seconds:6.1f} s  {state}{tail}")
    failed = sum(r.returncode != 0 for r in results)
    head = f"fleet deploy: {len(results) - failed} of {len(results)} hosts ok" + (f", {failed} FAILED" if failed else "")
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fleet.py", description=__doc__.splitlines()[0])
    p.add_argument("hosts", nargs="*", help="host addresses (user@host), when there is no inventory")
    p.add_argument("--inventory", type=Path, help="inventory TOML file (see deploy/fleet.toml)")
    p.add_argument("--logs", type=Path, help="folder for the per-host logs (default: a new temp folder)")
    p.add_argument("--jobs", type=int, default=8, help="hosts deployed at the same time (default 8)")
    p.add_argument("--make", default=os.environ.get("MAKE", "make"))
    args = p.parse_args(argv)
    try:
        if args.inventory and args.hosts:
            raise InventoryError("give either an inventory (FLEET=...) or a list of hosts (HOSTS=...), not both")
        hosts = read_inventory(args.inventory) if args.inventory else hosts_from_list(args.hosts)
        if not hosts:
            raise InventoryError('no hosts: make deploy HOSTS="pi@a.local pi@b.local" or FLEET=deploy/fleet.toml')
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise InventoryError(f"two hosts are both named {next(n for n in names if names.count(n) > 1)!r}")
    except InventoryError as exc:
        print(f"fleet.py: error: {exc}", file=sys.stderr)
        return 2
    logs = args.logs or Path(tempfile.mkdtemp(prefix="piposer-fleet-"))
    logs.mkdir(parents=True, exist_ok=True)
    print(f"fleet deploy: {len(hosts)} hosts, logs in {logs}", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda h: deploy(h, logs, args.make), hosts))
    print(summary(results))
    return 1 if any(r.returncode for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
