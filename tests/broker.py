"""A real Mosquitto broker for tests, on a free 127.0.0.1 port, plus a subscriber that records what it receives.

    with Broker(tmp_path) as broker:               # anonymous
    with Broker(tmp_path, users={"pi": "pw"}):     # password file made with mosquitto_passwd
    with Broker(tmp_path, extra=Certificates.create(tmp_path / "tls").broker_config()):   # TLS
        with Subscriber(broker, "piposer/#") as sub:
            ...
            sub.wait_for("piposer/dev/state")[0].json()
        broker.restart()                            # same port, e.g. to test reconnection
        broker.freeze(); broker.thaw()              # SIGSTOP/SIGCONT: a broker that stops answering

Used by the MQTT tests and importable by end-to-end and soak tests.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _find(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make test-deps` (Debian package mosquitto)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(RuntimeError):
    """Another process bound the port between picking it and mosquitto starting."""


class Broker:
    """A mosquitto process with its own config in `directory`; stops when the `with` block ends.

    `users` turns off anonymous access and creates those accounts; `persistence` keeps sessions
    and queued messages across `restart()` (saved when the broker stops cleanly); `extra` adds
    raw mosquitto.conf lines.
    """

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        port: int | None = None,
        persistence: bool = False,
        extra: tuple[str, ...] = (),
    ):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._may_move = port is None  # an automatic port may be re-picked if taken before the first start
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory / "mosquitto.log"
        self.config_path = self.directory / "mosquitto.conf"
        self.process: subprocess.Popen | None = None
        self._settings = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # as root, mosquitto would switch to 'mosquitto'
            f"allow_anonymous {'false' if users else 'true'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log_path}",
            "log_type all",
            *([f"password_file {self._password_file(users)}"] if users else []),
        ]
        self._extra = list(extra)  # after the listener line, so listener options (TLS) apply to it
        self._write_config()

    def _write_config(self) -> None:
        lines = [f"listener {self.port} {self.host}", *self._extra, *self._settings]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _password_file(self, users: dict[str, str]) -> Path:
        path = self.directory / "passwords"
        path.touch(mode=0o600)
        for user, password in users.items():
            subprocess.run([_find("mosquitto_passwd"), "-b", str(path), user, password], check=True, capture_output=True)
        return path

    def start(self, timeout: float = 5.0) -> Broker:
        for _ in range(5):
            try:
                return self._start(timeout)
            except PortTaken:
                if not self._may_move:
                    raise
                self.port = free_port()
                self._write_config()
        raise RuntimeError("mosquitto: no free port found in 5 tries")

    def _start(self, timeout: float) -> Broker:
        runs = self.log().count(" running")
        self.process = subprocess.Popen(
            [_find("mosquitto"), "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() + self.log()
                self.process.stderr.close()
                self.process = None
                raise (PortTaken if "Address already in use" in error else RuntimeError)(f"mosquitto exited: {error}")
            if self.log().count(" running") > runs:  # logged once its listeners are open
                self._may_move = False  # restarts keep this port
                return self
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within {timeout} s")

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, which saves persistence; `kill`: SIGKILL) and wait for it to exit."""
        if self.process is None:
            return
        self.thaw()
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stderr.close()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the broker keeps its sockets open but answers nothing, like a pulled network cable."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> Broker:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path) -> Certificates:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)

        def openssl(*args: str) -> None:
            subprocess.run([_find("openssl"), *args], check=True, capture_output=True)

        def key(name: str) -> Path:
            openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(d / f"{name}.key"))
            return d / f"{name}.key"

        openssl("req", "-x509", "-new", "-key", str(key("ca")), "-subj", "/CN=piposer test CA", "-days", "2",
                "-out", str(d / "ca.crt"))
        for name, extension in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
            openssl("req", "-new", "-key", str(key(name)), "-subj", f"/CN=piposer test {name}", "-out", str(d / f"{name}.csr"))
            (d / f"{name}.ext").write_text(extension + "\n")
            openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                    "-CAcreateserial", "-days", "2", "-extfile", str(d / f"{name}.ext"), "-out", str(d / f"{name}.crt"))
        return cls(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")

    def broker_config(self) -> tuple[str, ...]:
        """mosquitto.conf lines for a TLS listener that requires a client certificate from this CA."""
        return (f"cafile {self.ca}", f"certfile {self.server_cert}", f"keyfile {self.server_key}",
                "require_certificate true")


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """An MQTT client that records every message on `topics` (with their retain flags) as `Received`.

    With `session` set it keeps a persistent session (clean_session false, QoS 1 subscriptions),
    so a broker with persistence queues messages for it while it reconnects.
    """

    def __init__(self, broker: Broker, *topics: str, session: str | None = None, username=None, password=None,
                 tls: Certificates | None = None):
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        self.topics = topics or ("#",)
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=session or "",
            clean_session=session is None,
            protocol=mqtt.MQTTv311,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(tls.ca), certfile=str(tls.client_cert), keyfile=str(tls.client_key))
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        if not self.subscribed.wait(5):
            raise RuntimeError("subscriber did not get its subscription acknowledged")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client, userdata, message):
        with self._changed:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain), message.qos))
            self._changed.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._changed:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, count: int = 1, timeout: float = 5.0, where=lambda m: True) -> list[Received]:
        """Wait until at least `count` messages matching `where` arrived on `topic`; return them all."""
        with self._changed:
            found = lambda: [m for m in self.messages if m.topic == topic and where(m)]  # noqa: E731
            if not self._changed.wait_for(lambda: len(found()) >= count, timeout):
                last = [m.payload[:60] for m in found()[-3:]]
                raise AssertionError(f"{len(found())} of {count} messages on {topic} after {timeout} s; last: {last}")
            return found()

    def publish(self, topic: str, payload, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Sinks:
    """MqttSinks on a test broker with quick reconnects, each started (unless asked not to) and connected;
    `close()` closes them all. The MQTT tests' fixtures wrap one of these."""

    def __init__(self):
        self.sinks = []

    def make(self, broker: Broker, setup=None, *, start: bool = True, on_request=None, **overrides):
        from piposer.sinks.mqtt import MqttSink
        from piposer.sinks.mqtt_settings import MqttSettings, MqttSetup

        settings = MqttSettings(**{
            "host": broker.host, "port": broker.port, "device_id": "test", "keepalive": 5,
            "reconnect_min_delay": 0.05, "reconnect_max_delay": 0.2, **overrides,
        })
        sink = MqttSink(settings, setup or MqttSetup(), on_request=on_request)
        self.sinks.append(sink)
        if start:
            sink.start()
            assert sink.connected.wait(5), sink.last_error
        return sink

    def close(self) -> None:
        for sink in self.sinks:
            sink.close(timeout=1.0)
