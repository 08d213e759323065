#!/usr/bin/env bash
# Boot the emulated Pi (deploy/emulated-pi/build.sh's arm64 root) as a systemd-nspawn container with
# systemd as PID 1, or stop it. Each container writes to its own overlay over the cached root, so
# several can run at once and the cached root stays clean.
#
#   boot.sh start NAME PORT [systemd-nspawn options...]   e.g. --bind-ro=/work/shared
#   boot.sh stop NAME
#
# Network: the host's. sshd listens on 127.0.0.1:PORT (not 22, which the host may use), and the
# container reaches a broker on the host at 127.0.0.1 and the package registries as the host does.
# `ssh -p PORT -i <cache>/id_ed25519 pi@127.0.0.1` logs in; NAME is also the hostname (the MQTT device id).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_ROOT="${PIPOSER_ARM64_RUN:-/run/piposer-arm64}"

say() { printf 'emulated-pi %s: %s\n' "${NAME:-}" "$*" >&2; }
fail() { say "$*"; exit 1; }

start() {
  local port="$1"; shift
  local cache run log
  cache="$(bash "$HERE/build.sh")"
  run="$RUN_ROOT/$NAME"
  if [ -e "$run/pid" ]; then
    kill -0 "$(cat "$run/pid")" 2>/dev/null && fail "already running (pid $(cat "$run/pid")); stop it first"
    stop  # left over from a run that was killed: its overlay is still mounted
  fi
  mkdir -p "$run/upper" "$run/work" "$run/root" "$cache/pip-cache" "$cache/apt-archives/partial"
  mount -t overlay overlay -o "lowerdir=$cache/root,upperdir=$run/upper,workdir=$run/work" "$run/root" \
    || fail "cannot mount an overlay over $cache/root"
  printf 'Port %s\nListenAddress 127.0.0.1\nPasswordAuthentication no\n' "$port" \
    >"$run/root/etc/ssh/sshd_config.d/emulated-pi.conf"
  echo "$NAME" >"$run/root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$NAME" >"$run/root/etc/hosts"
  # Downloads kept between runs (pip wheels, apt .debs), so a warm run fetches nothing again.
  # --register=no --keep-unit: the host need not run systemd itself (this one may be a container).
  setsid systemd-nspawn --quiet --boot --directory="$run/root" --machine="$NAME" --hostname="$NAME" \
    --register=no --keep-unit --resolv-conf=copy-host --timezone=off --console=passive \
    --bind="$cache/pip-cache:/root/.cache/pip" --bind="$cache/apt-archives:/var/cache/apt/archives" \
    "$@" >"$run/console.log" 2>&1 </dev/null &
  echo $! >"$run/pid"
  local deadline=$((SECONDS + ${PIPOSER_ARM64_BOOT_TIMEOUT:-300}))
  until ssh -p "$port" -i "$cache/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR pi@127.0.0.1 \
      'systemctl is-system-running --wait >/dev/null 2>&1; true' 2>/dev/null; do
    kill -0 "$(cat "$run/pid")" 2>/dev/null || { log="$(tail -n 5 "$run/console.log")"; stop; fail "the container exited: $log"; }
    [ "$SECONDS" -lt "$deadline" ] || { stop; fail "sshd on 127.0.0.1:$port did not answer in time"; }
    sleep 2
  done
  say "up: ssh -p $port -i $cache/id_ed25519 pi@127.0.0.1"
}

stop() {
  local run="$RUN_ROOT/$NAME" pid
  [ -e "$run" ] || return 0
  if [ -e "$run/pid" ]; then
    pid="$(cat "$run/pid")"
    # SIGTERM asks nspawn to shut the container's systemd down cleanly; SIGKILL after 60 s.
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$run/pid"
  fi
  if mountpoint -q "$run/root"; then umount "$run/root" || umount -l "$run/root"; fi
  rm -rf "$run"
}

[ "$(id -u)" = 0 ] || fail "run as root"
case "${1:-}" in
  start) [ $# -ge 3 ] || fail "usage: $0 start NAME PORT [nspawn options]"; NAME="$2"; shift 2; start "$@" ;;
  stop) [ $# -eq 2 ] || fail "usage: $0 stop NAME"; NAME="$2"; stop ;;
  *) fail "usage: $0 start NAME PORT [nspawn options] | stop NAME" ;;
esac
