"""MQTT publisher benchmark against a local Mosquitto: payload sizes, sustained messages/s, the cost of
`publish()` in the frame loop, and capture-to-subscriber latency at camera rate.

    .venv/bin/python bench/mqtt_bench.py [--repeats 3]

The subscriber runs in the same process on the same machine, so latency is capture (the frame's
monotonic timestamp) to the message arriving at a subscriber, i.e. through the broker.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from broker import Broker, Subscriber  # noqa: E402

from piposer.sinks.mqtt import MqttSettings, MqttSink  # noqa: E402
from piposer.sinks.payloads import encode, poses_payload  # noqa: E402
from piposer.types import BLAZEPOSE33, COCO17, Frame, make_pose  # noqa: E402

WIDTH, HEIGHT = 640, 480
IMAGE = np.zeros((HEIGHT, WIDTH, 3), np.uint8)


def people(count: int, layout=COCO17, seed: int = 0) -> list:
    """Plausible poses: keypoints spread over a person-sized box, most detected, scores with full precision."""
    rng = np.random.default_rng(seed)
    poses = []
    for i in range(count):
        k = len(layout.keypoints)
        xy = rng.uniform(0, 1, (k, 2)) * (120, 300) + (60 + 110 * i, 100)
        scores = rng.uniform(0.1, 1.0, k)
        extra = {"z": rng.normal(0, 0.3, k), "visibility": rng.uniform(0, 1, k)} if layout is BLAZEPOSE33 else {}
        pose = make_pose(layout, xy, scores, (WIDTH, HEIGHT), 0.3, float(scores.mean()), **extra)
        pose.track_id = i + 1
        poses.append(pose)
    return poses


def frame(index: int) -> Frame:
    return Frame(IMAGE, index, time.monotonic(), time.time())


def sizes() -> list[str]:
    """The payload as published, next to a positional variant (`"nose": [x, y, nx, ny, score, detected]`)
    that was considered and rejected: about half the size, but unreadable and brittle for consumers."""
    rows = []
    for layout in (COCO17, BLAZEPOSE33):
        for count in (1, 5):
            data = poses_payload(frame(0), people(count, layout), "posenet")
            positional = {**data, "poses": [
                {**p, "keypoints": {name: list(k.values()) for name, k in p["keypoints"].items()}} for p in data["poses"]
            ]}
            rows.append(f"| {layout.name} | {count} | {len(encode(data)):,} | {len(encode(positional)):,} |")
    return rows


def sink_on(broker: Broker, **overrides) -> MqttSink:
    settings = MqttSettings(host=broker.host, port=broker.port, device_id="bench", discovery=False, **overrides)
    sink = MqttSink(settings)
    sink.start()
    if not sink.connected.wait(5):
        raise RuntimeError(sink.last_error)
    return sink


class Counter:
    """Counts poses messages and records when each frame index arrived."""

    def __init__(self, broker: Broker):
        self.arrived: dict[int, float] = {}
        self.done = threading.Event()
        self.expected = 0
        self.subscriber = Subscriber(broker, "piposer/bench/poses")
        self.subscriber.client.on_message = self._on_message

    def _on_message(self, client, userdata, message):
        index = int(message.payload[message.payload.index(b'"frame":') + 8:].split(b",", 1)[0])
        self.arrived[index] = time.monotonic()
        if len(self.arrived) >= self.expected:
            self.done.set()


def throughput(broker: Broker, qos: int, persons: int, messages: int = 3000) -> dict:
    """Publish as fast as the loop can; how many messages per second reach the subscriber, and what each call costs."""
    counter = Counter(broker)
    sink = sink_on(broker, qos=qos, queue_size=messages)
    poses = people(persons)
    counter.expected = messages
    calls = np.empty(messages)
    started = time.monotonic()
    for i in range(messages):
        t = time.perf_counter()
        sink.publish(frame(i), poses)
        calls[i] = time.perf_counter() - t
    counter.done.wait(60)
    elapsed = max(counter.arrived.values()) - started
    received, drops = len(counter.arrived), sink.queue_drops
    sink.close()
    counter.subscriber.close()
    return {
        "msgs_per_s": received / elapsed,
        "received": received,
        "drops": drops,
        "call_us_p50": float(np.percentile(calls, 50) * 1e6),
        "call_us_p95": float(np.percentile(calls, 95) * 1e6),
    }


def raw_paho(broker: Broker, persons: int, messages: int = 3000) -> dict:
    """Baseline: the same payloads encoded and published straight through one paho client from the
    producing thread: no outbox, no sender thread, no bound on memory, no drop accounting."""
    counter = Counter(broker)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.connect(broker.host, broker.port)
    client.loop_start()
    poses = people(persons)
    counter.expected = messages
    started = time.monotonic()
    for i in range(messages):
        client.publish("piposer/bench/poses", encode(poses_payload(frame(i), poses, "posenet")))
    counter.done.wait(60)
    elapsed = max(counter.arrived.values()) - started
    client.disconnect()
    client.loop_stop()
    counter.subscriber.close()
    return {"msgs_per_s": len(counter.arrived) / elapsed}


def latency(broker: Broker, qos: int, persons: int, fps: float = 30.0, seconds: float = 4.0) -> dict:
    """Publish at camera rate; capture timestamp to subscriber arrival, p50/p95 in ms."""
    counter = Counter(broker)
    sink = sink_on(broker, qos=qos)
    poses = people(persons)
    count = int(fps * seconds)
    counter.expected = count
    captured = {}
    next_due = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, next_due - time.monotonic()))
        next_due += 1.0 / fps
        shot = frame(i)
        captured[i] = shot.timestamp
        sink.publish(shot, poses)
    counter.done.wait(10)
    sink.close()
    counter.subscriber.close()
    ms = np.array([(counter.arrived[i] - captured[i]) * 1000 for i in counter.arrived])
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "received": len(ms), "sent": count}


def median_of(runs: list[dict]) -> dict:
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print("poses payload size (bytes, compact JSON)")
    print("| layout | people | bytes (published) | bytes (positional variant) |\n|---|---|---|---|")
    print("\n".join(sizes()))

    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp)) as broker:
        print(f"\nthroughput, median of {args.repeats} runs of 3000 messages")
        print("(raw paho: the same payloads encoded and published directly by the producer, QoS 0, runs interleaved)")
        print("| qos | people | sink msgs/s | raw paho msgs/s | sink/raw | publish() p50 µs | publish() p95 µs | drops |")
        print("|---|---|---|---|---|---|---|---|")
        for qos, persons in ((0, 1), (1, 1), (0, 5)):
            runs, raw = [], []
            for _ in range(args.repeats):
                runs.append(throughput(broker, qos, persons))
                raw.append(raw_paho(broker, persons))
            r, b = median_of(runs), median_of(raw)
            print(f"| {qos} | {persons} | {r['msgs_per_s']:,.0f} | {b['msgs_per_s']:,.0f} | "
                  f"{r['msgs_per_s'] / b['msgs_per_s']:.2f} | {r['call_us_p50']:.0f} | {r['call_us_p95']:.0f} | "
                  f"{r['drops']:.0f} |")

        print(f"\ncapture-to-subscriber latency at 30 fps for 4 s, median of {args.repeats} runs")
        print("| qos | people | p50 ms | p95 ms | received/sent |\n|---|---|---|---|---|")
        for qos, persons in ((0, 1), (1, 1), (0, 5)):
            r = median_of([latency(broker, qos, persons) for _ in range(args.repeats)])
            print(f"| {qos} | {persons} | {r['p50']:.2f} | {r['p95']:.2f} | {r['received']:.0f}/{r['sent']:.0f} |")


if __name__ == "__main__":
    main()
