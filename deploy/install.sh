#!/usr/bin/env bash
# Install or update piposer on a Raspberry Pi (Raspberry Pi OS Bookworm or later). Idempotent: run it
# again after every update. Run as root from the project folder: `sudo ./deploy/install.sh`
# (`make deploy HOST=user@pi` copies the project over and does exactly that).
#
# Steps: apt packages -> code in /opt/piposer/src -> venv (--system-site-packages, so the apt-only
# picamera2/libcamera bindings are importable) -> model -> /etc/piposer/config.toml (kept if present)
# -> web console password (printed once) -> service user -> systemd unit, enabled and (re)started.
#
# Switches (environment variables):
#   PIPOSER_PREFIX=/some/dir   install below this root instead of / (the deploy test uses a temp dir)
#   PIPOSER_SKIP_APT=1         do not touch apt (packages already there, or not a Debian system)
#   PIPOSER_SKIP_SYSTEMD=1     no service user, no unit enable/start (the unit file is still copied)
#   PIPOSER_WITH_MOSQUITTO=1   also install and enable a local Mosquitto broker
#   PIPOSER_MODEL=name         model to fetch (default: posenet); PIPOSER_SKIP_MODEL=1 skips the step
#   PIPOSER_CONFIG=file        install this file as /etc/piposer/config.toml, replacing the one there
#                              (the previous one is kept as config.toml.old); `make deploy FLEET=...` uses it
set -euo pipefail

PREFIX="${PIPOSER_PREFIX:-}"
SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APP_DIR="$PREFIX/opt/piposer"
CONF_DIR="$PREFIX/etc/piposer"
STATE_DIR="$PREFIX/var/lib/piposer"
MODEL_DIR="$STATE_DIR/models"
UNIT_DIR="$PREFIX/etc/systemd/system"
SERVICE_USER=piposer
MODEL="${PIPOSER_MODEL:-posenet}"
PYTHON="${PIPOSER_PYTHON:-python3}"

say() { printf '\033[1mpiposer install:\033[0m %s\n' "$*"; }
on() { [ "${1:-0}" = 1 ]; }

if [ "$(id -u)" != 0 ] && [ -z "$PREFIX" ]; then
  echo "piposer install: run as root (sudo $0)" >&2
  exit 1
fi

install_packages() {
  local packages=(python3 python3-venv python3-pip python3-numpy rsync)
  # picamera2 and its libcamera bindings exist only as Debian packages on Raspberry Pi OS, from its own
  # apt repository; plain Debian (or the emulated Pi) has neither, and everything else works without.
  if ! grep -Eqrs --include='*.list' --include='*.sources' 'raspberrypi\.(com|org)' /etc/apt/sources.list /etc/apt/sources.list.d; then
    say "Raspberry Pi OS apt repository not configured (not Raspberry Pi OS?): going on with Debian's packages"
  fi
  if apt-cache show python3-picamera2 >/dev/null 2>&1; then
    packages+=(python3-picamera2)
  else
    say "python3-picamera2 is not available here: Pi camera support disabled (USB cameras still work)"
  fi
  if on "${PIPOSER_WITH_MOSQUITTO:-0}"; then
    packages+=(mosquitto mosquitto-clients)
  fi
  say "apt packages: ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
  if on "${PIPOSER_WITH_MOSQUITTO:-0}" && ! on "${PIPOSER_SKIP_SYSTEMD:-0}"; then
    systemctl enable --now mosquitto
  fi
}

copy_code() {
  say "code -> $APP_DIR/src"
  mkdir -p "$APP_DIR/src"
  rsync -a --delete --exclude .git --exclude .venv --exclude '.bench-venv' --exclude '__pycache__' \
    --exclude '*.egg-info' --exclude .pytest_cache --exclude .hypothesis --exclude out \
    --exclude deploy/host-config.toml "$SRC_DIR/" "$APP_DIR/src/"
}

make_venv() {
  if [ ! -x "$APP_DIR/venv/bin/python" ]; then
    say "venv -> $APP_DIR/venv"
    "$PYTHON" -m venv --system-site-packages "$APP_DIR/venv"
  fi
  say "pip install (this takes a few minutes on a Pi Zero)"
  # PIPOSER_LITERT=1 adds ai-edge-litert (about 2.4x faster invoke; 64-bit OS only), else tflite-runtime alone.
  "$APP_DIR/venv/bin/python" -m pip install -q --upgrade "$APP_DIR/src${PIPOSER_LITERT:+[litert]}"
}

fetch_model() {
  mkdir -p "$MODEL_DIR"
  say "model '$MODEL' -> $MODEL_DIR"
  # Already there (copied by hand or fetched before)? Then nothing is downloaded.
  if ! PIPOSER_MODEL_DIR="$MODEL_DIR${PIPOSER_MODEL_DIR:+:$PIPOSER_MODEL_DIR}" \
      "$APP_DIR/venv/bin/python" - "$MODEL" "$MODEL_DIR" <<'PY'
import shutil, sys
from pathlib import Path
from piposer.errors import PiposerError
from piposer.modelstore import ModelStore
name, dest = sys.argv[1], Path(sys.argv[2])
store = ModelStore.from_environment()
try:
    try:
        found = store.resolve(name).path
    except PiposerError:
        found = store.fetch(name, dest)
except PiposerError as exc:
    sys.exit(str(exc))
if found.parent != dest:
    shutil.copy2(found, dest / found.name)
print(dest / found.name)
PY
  then
    say "WARNING: model '$MODEL' could not be fetched; copy its .tflite file into $MODEL_DIR"
  fi
}

install_config() {
  mkdir -p "$CONF_DIR"
  if [ -n "${PIPOSER_CONFIG:-}" ]; then
    [ -f "$PIPOSER_CONFIG" ] || { echo "piposer install: PIPOSER_CONFIG file not found: $PIPOSER_CONFIG" >&2; exit 1; }
    if [ -f "$CONF_DIR/config.toml" ] && ! cmp -s "$PIPOSER_CONFIG" "$CONF_DIR/config.toml"; then
      cp -p "$CONF_DIR/config.toml" "$CONF_DIR/config.toml.old"
    fi
    say "config $PIPOSER_CONFIG -> $CONF_DIR/config.toml"
    install -m 0640 "$PIPOSER_CONFIG" "$CONF_DIR/config.toml"
  elif [ -f "$CONF_DIR/config.toml" ]; then
    say "keeping existing $CONF_DIR/config.toml"
  else
    say "config -> $CONF_DIR/config.toml"
    install -m 0640 "$SRC_DIR/deploy/config.toml" "$CONF_DIR/config.toml"
  fi
  # The web console's password: made up once, printed once, only its hash is kept.
  if [ ! -f "$CONF_DIR/web-password" ]; then
    say "web console password -> $CONF_DIR/web-password (change it with: sudo piposer web passwd)"
    "$APP_DIR/venv/bin/piposer" web passwd --random --file "$CONF_DIR/web-password"
  fi
  say "checking the config"
  "$APP_DIR/venv/bin/python" -c 'import sys; from pathlib import Path; from piposer import config; config.load(Path(sys.argv[1]))' \
    "$CONF_DIR/config.toml"
}

make_user() {
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    say "service user $SERVICE_USER"
    useradd --system --user-group --home-dir /var/lib/piposer --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  # The unit asks for the video and gpio groups; a system without GPIO (not a Pi) gets an empty gpio group.
  getent group gpio >/dev/null || groupadd --system gpio
  local group
  for group in video gpio i2c spi; do
    if getent group "$group" >/dev/null; then
      usermod -a -G "$group" "$SERVICE_USER"
    fi
  done
  chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
  # The service may rewrite its own config and poses file (the web console saves zones and taught poses
  # by writing a new file beside the old one and renaming it): the folder is the service group's, the
  # config the service user's; the password file stays root's, readable by the group.
  chgrp "$SERVICE_USER" "$CONF_DIR" "$CONF_DIR/web-password"
  chmod 2770 "$CONF_DIR"
  chown "$SERVICE_USER:$SERVICE_USER" "$CONF_DIR/config.toml"
}

install_unit() {
  mkdir -p "$UNIT_DIR"
  install -m 0644 "$SRC_DIR/deploy/piposer.service" "$UNIT_DIR/piposer.service"
  if on "${PIPOSER_SKIP_SYSTEMD:-0}"; then
    say "unit copied to $UNIT_DIR (systemd steps skipped)"
    return
  fi
  systemctl daemon-reload
  systemctl enable piposer.service
  systemctl restart piposer.service
  say "service started: journalctl -u piposer -f"
}

if on "${PIPOSER_SKIP_APT:-0}"; then say "apt skipped"; else install_packages; fi
copy_code
make_venv
if on "${PIPOSER_SKIP_MODEL:-0}"; then say "model skipped"; else fetch_model; fi
install_config
if ! on "${PIPOSER_SKIP_SYSTEMD:-0}"; then make_user; fi
install_unit
say "done"
