"""Many Pis on one broker: N simulated devices, each a real MqttSink (poses at camera rate, state on change,
stats every 10 s, Home Assistant discovery), publish to one local Mosquitto while one subscriber (a Home
Assistant stand-in) takes `piposer/#`. Reports broker CPU and capture-to-subscriber latency per N.

    .venv/bin/python bench/fleet_broker.py [--devices 1 10 25 50 100] [--fps 15] [--people 2] [--seconds 20]

The devices run in two worker processes on the same 2 cores as the broker and the subscriber, so the
figures are a floor for the broker (a real fleet's publishers are on their own Pis).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from broker import Broker  # noqa: E402
from mqtt_bench import IMAGE, frame, people  # noqa: E402

from piposer.sinks.mqtt import MqttSettings, MqttSink  # noqa: E402
from piposer.sinks.payloads import encode, poses_payload  # noqa: E402
from piposer.types import Frame  # noqa: E402

STATS_INTERVAL = 10.0


def devices(port: int, names: list[str], fps: float, persons: int, seconds: float, start_at: float, sent) -> None:
    """One worker: its devices publish frame after frame, each on its own phase of the frame period; the
    send time of every frame goes back to the parent through `sent`."""
    sinks = []
    for name in names:
        sink = MqttSink(MqttSettings(host="127.0.0.1", port=port, device_id=name), model_name="posenet")
        sink.start()
        sinks.append(sink)
    for sink in sinks:
        if not sink.connected.wait(30):
            raise RuntimeError(f"{sink.settings.device_id}: {sink.last_error}")
    poses = [people(persons, seed=i) for i in range(len(names))]
    period = 1.0 / fps
    count = int(seconds * fps)
    # (due time, device, frame): each device's frames are `period` apart, devices spread over one period
    schedule = sorted((start_at + k * period + d * period / len(names), d, k) for d in range(len(names)) for k in range(count))
    times = {}
    next_stats = [start_at + STATS_INTERVAL] * len(names)
    while time.time() < start_at:
        time.sleep(0.01)
    for due, d, k in schedule:
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        now = time.time()
        sinks[d].publish(Frame(IMAGE, k, time.monotonic(), now), poses[d] if (k // 30) % 4 else poses[d][:1])
        times[(names[d], k)] = now
        if now >= next_stats[d]:
            sinks[d].publish_stats({"fps": fps, "frames": k, "latency_ms": {"p50": 20.0, "p95": 30.0}})
            next_stats[d] += STATS_INTERVAL
    for sink in sinks:
        sink.close()
    sent.put((times, sum(s.queue_drops for s in sinks)))


class Home:
    """The subscriber: arrival wall time of every poses message, by (device, frame)."""

    def __init__(self, broker: Broker):
        self.arrived: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="home")
        self.client.on_connect = lambda c, *a: c.subscribe("piposer/#", 0)
        self.client.on_message = self.on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def on_message(self, client, userdata, message):
        now = time.time()
        with self.lock:
            if message.topic.endswith("/poses"):
                device = message.topic.split("/")[1]
                frame = int(message.payload[message.payload.index(b'"frame":') + 8:].split(b",", 1)[0])
                self.arrived[(device, frame)] = now

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(broker: Broker, n: int, fps: float, persons: int, seconds: float) -> dict:
    home = Home(broker)
    time.sleep(0.5)
    names = [f"pi{i:03d}" for i in range(n)]
    workers = min(2, n)
    sent = mp.Queue()
    start_at = time.time() + 3 + n * 0.02  # time for every device to connect first
    procs = [mp.Process(target=devices, args=(broker.port, names[w::workers], fps, persons, seconds, start_at, sent))
             for w in range(workers)]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.05)
    cpu0, t0 = cpu_seconds(broker.process.pid), time.monotonic()
    results = [sent.get(timeout=seconds + 120) for _ in procs]
    cpu1, t1 = cpu_seconds(broker.process.pid), time.monotonic()
    for p in procs:
        p.join(30)
    time.sleep(0.5)
    home.close()
    times = {k: v for r in results for k, v in r[0].items()}
    with home.lock:
        ms = np.array([(home.arrived[k] - t) * 1000 for k, t in times.items() if k in home.arrived])
    sent_times = sorted(times.values())
    return {
        "devices": n, "offered": len(times) / seconds,
        # what the simulated devices managed (past a few hundred, the two worker processes fall behind)
        "achieved": len(times) / max(sent_times[-1] - sent_times[0], 1e-9), "received": len(ms), "sent": len(times),
        "drops": sum(r[1] for r in results), "broker_cpu": 100 * (cpu1 - cpu0) / (t1 - t0),
        "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 10, 25, 50, 100])
    parser.add_argument("--fps", type=float, default=15.0, help="poses messages per second per device")
    parser.add_argument("--people", type=int, default=2, help="people in view (one of them leaves now and then)")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp)) as broker:
        version = broker.log().split("mosquitto version ", 1)[-1].split()[0] if "version" in broker.log() else "?"
        size = len(encode(poses_payload(frame(0), people(args.people), "posenet")))
        print(f"Mosquitto {version}, {args.fps:g} fps per device, {args.people} people ({size:,} bytes per poses "
              f"message), {args.seconds:g} s per N")
        print("| devices | poses msgs/s offered | achieved | received/sent | drops | broker CPU % of one core "
              "| p50 ms | p95 ms | p99 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        for n in args.devices:
            r = run(broker, n, args.fps, args.people, args.seconds)
            print(f"| {n} | {r['offered']:,.0f} | {r['achieved']:,.0f} | {r['received']}/{r['sent']} | {r['drops']} | {r['broker_cpu']:.1f} | "
                  f"{r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
