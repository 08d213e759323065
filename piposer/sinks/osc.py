"""OSC over UDP for installation tools (TouchDesigner, Max/MSP, Pure Data, openFrameworks, Unity).

Each destination gets one OSC bundle per frame (`<prefix>/frame`, `/people`, then each pose and its
keypoints), `<prefix>/enter <id>` and `<prefix>/leave <id>` as tracked people come and go, and
`<prefix>/event/<rule> <edge> <person>` on every rule edge. Sockets are non-blocking UDP resolved once at
start: a destination that is not listening costs one failed `sendto`, never a wait. The address space is
in docs/osc.md.

Messages are encoded here (OSC 1.0: int32, float32, strings; about 30 lines) rather than with python-osc's
builder, which took 0.94 ms per frame for two people on this machine against 0.15 ms here (BENCHMARKS.md);
python-osc stays the reference the tests decode with.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from ..errors import OutputError
from ..events import Event, EventKind
from ..types import Frame, Pose
from . import Sink
from .osc_settings import OscSettings
from .throttle import Throttle

MAX_DATAGRAM = 60_000  # below UDP's 65,507: a frame with many people goes out as several bundles
Message = tuple[str, tuple]


@dataclass
class Destination:
    """One [[osc]] entry, resolved: its socket, address and frame-rate cap."""

    settings: OscSettings
    sock: socket.socket
    address: tuple
    throttle: Throttle
    failed: bool = False  # the last send failed (logged once per run of failures)

    @property
    def shape(self) -> tuple:
        """What the frame bundle depends on: destinations alike in it share one encoding per frame."""
        s = self.settings
        return s.prefix, s.coordinates, s.layout, tuple(s.keypoints)

    def send(self, datagrams: list[bytes], log) -> None:
        ok = True
        for dgram in datagrams:
            try:
                self.sock.sendto(dgram, self.address)
            except OSError as exc:  # full buffer, unreachable network: drop, never wait
                if not self.failed:
                    log(f"osc {self.settings.host}:{self.settings.port}: {exc.strerror or exc}; dropping until it works")
                self.failed, ok = True, False
        if ok:
            self.failed = False


def osc_string(text: str) -> bytes:
    """An OSC string: UTF-8, NUL-terminated, padded with NULs to a multiple of 4 bytes."""
    data = text.encode()
    return data + b"\0" * (4 - len(data) % 4)


TAGS = {int: "i", float: "f", str: "s"}


def encode(address: str, args: tuple) -> bytes:
    """One OSC 1.0 message: address, type tags, then int32/float32 big-endian and strings."""
    tags = "".join(TAGS[type(a)] for a in args)
    if "s" not in tags:
        return osc_string(address) + osc_string("," + tags) + struct.pack(">" + tags, *args)
    body = b"".join(osc_string(a) if t == "s" else struct.pack(">" + t, a) for t, a in zip(tags, args))
    return osc_string(address) + osc_string("," + tags) + body


BUNDLE_HEAD = osc_string("#bundle") + struct.pack(">Q", 1)  # time tag 1: "immediately"


def bundles(messages: list[Message]) -> list[bytes]:
    """Pack messages into as few OSC bundles as fit in MAX_DATAGRAM, in order."""
    out, parts, size = [], [], len(BUNDLE_HEAD)
    for address, args in messages:
        message = encode(address, args)
        if parts and size + 4 + len(message) > MAX_DATAGRAM:
            out.append(BUNDLE_HEAD + b"".join(parts))
            parts, size = [], len(BUNDLE_HEAD)
        parts.append(struct.pack(">i", len(message)) + message)
        size += 4 + len(message)
    if parts:
        out.append(BUNDLE_HEAD + b"".join(parts))
    return out


def open_destination(index: int, settings: OscSettings) -> Destination:
    try:
        family, _, _, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_DGRAM)[0]
    except OSError as exc:
        raise OutputError(f"osc[{index}].host {settings.host!r}: cannot resolve: {exc.strerror or exc}") from None
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return Destination(settings, sock, address, Throttle(settings.max_rate_hz))


def pose_messages(frame: Frame, poses: list[Pose], settings: OscSettings) -> list[Message]:
    """One frame's messages for one destination, in its coordinates, layout and keypoint choice."""
    p, pixels = settings.prefix, settings.coordinates == "pixels"
    sx, sy = (1.0, 1.0) if pixels else (1.0 / frame.width, 1.0 / frame.height)
    messages: list[Message] = [(f"{p}/frame", (frame.index, frame.width, frame.height)), (f"{p}/people", (len(poses),))]
    for number, pose in enumerate(poses):
        person = pose.track_id if pose.track_id is not None else number
        b = pose.box
        messages.append((f"{p}/pose/{person}", (float(pose.score), b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy)))
        chosen = [k for k in pose.keypoints if k.name in settings.keypoints] if settings.keypoints else pose.keypoints
        values = [(float(k.x if pixels else k.nx), float(k.y if pixels else k.ny), float(k.score)) for k in chosen]
        if settings.layout == "flat":
            messages.append((f"{p}/pose/{person}/keypoints", tuple(v for xyz in values for v in xyz)))
        else:
            messages += [(f"{p}/pose/{person}/{k.name}", xys) for k, xys in zip(chosen, values)]
    return messages


class OscSink(Sink):
    """Sends poses, people entering and leaving, and rule edges to every [[osc]] destination.

    A tracked person "enters" on the first frame with their id and "leaves" once unseen for
    `leave_after` seconds (the tracker's max_age, after which the id is gone for good); a pause or
    close makes everyone leave.
    """

    name = "OscSink"

    def __init__(self, destinations: list[OscSettings], leave_after: float = 1.0, log=print):
        self.log = log
        self.leave_after = leave_after
        self.destinations: list[Destination] = []
        self._last_seen: dict[int, float] = {}  # track id -> frame time it was last seen
        try:
            for index, settings in enumerate(destinations):
                self.destinations.append(open_destination(index, settings))
        except BaseException:
            self.close()
            raise

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        ids = [pose.track_id for pose in poses if pose.track_id is not None]
        entered = [i for i in ids if i not in self._last_seen]
        self._last_seen.update((i, frame.timestamp) for i in ids)
        left = [i for i, seen in self._last_seen.items() if frame.timestamp - seen > self.leave_after]
        for i in left:
            del self._last_seen[i]
        encoded: dict[tuple, list[bytes]] = {}
        for destination in self.destinations:
            admitted = destination.throttle.admit(frame.timestamp, frame, poses)
            if not (admitted or entered or left):
                continue
            key = (destination.shape, admitted)
            if key not in encoded:
                p = destination.settings.prefix
                messages = [(f"{p}/leave", (i,)) for i in left] + [(f"{p}/enter", (i,)) for i in entered]
                if admitted:
                    messages += pose_messages(frame, poses, destination.settings)
                encoded[key] = bundles(messages)
            destination.send(encoded[key], self.log)

    def on_event(self, event: Event) -> None:
        if event.kind is EventKind.RULE:
            person = event.fields.get("person")
            args = (str(event.fields["edge"]), -1 if person is None else int(person))
            rule = event.fields["rule"]  # rule names are letters, digits, _ and -: safe in an address
            for destination in self.destinations:
                destination.send(bundles([(f"{destination.settings.prefix}/event/{rule}", args)]), self.log)

    def pause(self, reason: str) -> None:
        self._everyone_leaves()

    def close(self) -> None:
        self._everyone_leaves()
        for destination in self.destinations:
            destination.sock.close()
        self.destinations = []

    def _everyone_leaves(self) -> None:
        left, self._last_seen = list(self._last_seen), {}
        for destination in self.destinations:
            p = destination.settings.prefix
            destination.send(bundles([(f"{p}/leave", (i,)) for i in left] + [(f"{p}/people", (0,))]), self.log)
