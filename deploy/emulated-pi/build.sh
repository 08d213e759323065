#!/usr/bin/env bash
# Build (once) an arm64 Debian Bookworm root that stands in for Raspberry Pi OS Lite: systemd, OpenSSH,
# python3 + venv, sudo and rsync, a `pi` user with passwordless sudo and a throwaway SSH key.
# Runs on an x86 Debian host as root, through qemu-user-static and binfmt_misc.
#
# The root is cached in $PIPOSER_ARM64_CACHE (default /var/cache/piposer-arm64) under the first 12 hex
# digits of this script's sha256, so editing the script builds a fresh root and an unchanged one is reused.
# Prints the cache directory: <dir>/root is the root, <dir>/id_ed25519 the client key for user pi.
set -euo pipefail

CACHE="${PIPOSER_ARM64_CACHE:-/var/cache/piposer-arm64}"
SUITE=bookworm
# debootstrap's default Debian mirror unless PIPOSER_ARM64_MIRROR names another; it also writes the root's sources.list.
MIRROR=(${PIPOSER_ARM64_MIRROR:+"$PIPOSER_ARM64_MIRROR"})
PACKAGES=systemd,systemd-sysv,dbus,openssh-server,python3,python3-venv,sudo,rsync,ca-certificates,procps,iproute2
KEY="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
DIR="$CACHE/$KEY"

say() { printf 'emulated-pi build: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap and binfmt_misc need it)"

# Host tools, from Debian's own packages.
missing=()
for pkg in debootstrap qemu-user-static binfmt-support systemd-container; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# aarch64 binaries run through qemu: binfmt_misc must be mounted (a container host may not have done it)
# and qemu-aarch64 registered with F (works inside the container) and C (setuid programs such as sudo
# get their credentials; Debian's entry lacks it). Done on every call: a host reboot forgets it.
binfmt=/proc/sys/fs/binfmt_misc
if [ ! -e "$binfmt/register" ]; then
  mount -t binfmt_misc binfmt_misc "$binfmt" || fail "cannot mount binfmt_misc: arm64 code cannot run here"
fi
if ! grep -qs '^flags: .*C.*F\|^flags: .*F.*C' "$binfmt/qemu-aarch64"; then
  spec=/usr/share/binfmts/qemu-aarch64
  field() { awk -v k="$1" '$1 == k { print $2 }' "$spec"; }
  [ ! -e "$binfmt/qemu-aarch64" ] || echo -1 >"$binfmt/qemu-aarch64"
  printf ':qemu-aarch64:M:%s:%s:%s:%s:POCF' "$(field offset)" "$(field magic)" "$(field mask)" "$(field interpreter)" \
    >"$binfmt/register" || fail "cannot register qemu-aarch64 with binfmt_misc"
fi

if [ -f "$DIR/ready" ]; then
  echo "$DIR"
  exit 0
fi

rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp"
say "debootstrap --arch arm64 $SUITE -> $DIR (takes minutes under qemu)"
debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$DIR.tmp/root" "${MIRROR[@]}" \
  >"$DIR.tmp/debootstrap.log" 2>&1 || fail "debootstrap failed, see $DIR.tmp/debootstrap.log: $(tail -n 3 "$DIR.tmp/debootstrap.log")"

root="$DIR.tmp/root"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
echo raspberrypi >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' >"$root/etc/hosts"
# Extra CA certificates of the host (a TLS-inspecting proxy on the way to the package registries).
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null
fi
# The Raspberry Pi OS default user: pi, in sudo without a password, logging in with the throwaway key.
in_root useradd --create-home --shell /bin/bash --groups sudo pi
echo 'pi ALL=(ALL) NOPASSWD: ALL' >"$root/etc/sudoers.d/010_pi-nopasswd"
chmod 0440 "$root/etc/sudoers.d/010_pi-nopasswd"
ssh-keygen -q -t ed25519 -N '' -C emulated-pi -f "$DIR.tmp/id_ed25519"
install -d -m 0700 -o 1000 -g 1000 "$root/home/pi/.ssh"
install -m 0600 -o 1000 -g 1000 "$DIR.tmp/id_ed25519.pub" "$root/home/pi/.ssh/authorized_keys"
in_root ssh-keygen -A >/dev/null
# Under qemu-user, systemd cannot set up service credentials (EINVAL): these early units would fail
# on LoadCredential= lines that only matter when credentials are passed in, so they are cleared.
for unit in systemd-sysusers systemd-tmpfiles-setup systemd-tmpfiles-setup-dev; do
  mkdir -p "$root/etc/systemd/system/$unit.service.d"
  printf '[Service]\nLoadCredential=\n' >"$root/etc/systemd/system/$unit.service.d/emulated-pi.conf"
done
# Units a container has no use for (no console to log in on, no clock or udev to manage).
in_root systemctl mask getty@tty1.service console-getty.service systemd-timesyncd.service \
  systemd-udevd.service systemd-udev-trigger.service >/dev/null 2>&1 || true
rm -f "$root/etc/machine-id" && : >"$root/etc/machine-id"
in_root apt-get clean

mv "$DIR.tmp" "$DIR"
touch "$DIR/ready"
say "built in ${SECONDS} s"
echo "$DIR"
