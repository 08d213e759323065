"""What the Home Assistant device costs the frame loop: `MqttSink.publish()` with zones and rules against
without, and the dashboard picture (the loop's copy against the encoder thread's draw-scale-encode).

    .venv/bin/python bench/hass_bench.py [--frames 2000]

No broker is needed: `publish()` only queues, so this measures the frame loop's side alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from mqtt_bench import people  # noqa: E402

from piposer.rules.settings import Condition, RuleSettings, Zone  # noqa: E402
from piposer.rules.zones import named_zones  # noqa: E402
from piposer.sinks.mqtt import MqttSettings, MqttSink  # noqa: E402
from piposer.sinks.mqtt_settings import MqttSetup  # noqa: E402
from piposer.sinks.picture import encode_picture  # noqa: E402
from piposer.types import Frame  # noqa: E402

RULES = [
    RuleSettings(name="door", when=Condition(zone=Zone(rect=[0.0, 0.0, 0.5, 1.0]))),
    RuleSettings(name="sofa", when=Condition(zone=Zone(keypoint="left_hip", polygon=[[0.4, 0.3], [1, 0.3], [1, 1], [0.4, 1]]))),
    RuleSettings(name="desk", when=Condition(zone=Zone(keypoint="right_wrist", rect=[0.6, 0.0, 1.0, 0.5]))),
]


def publish_us(sink: MqttSink, poses: list, frames: int) -> list[float]:
    """Per-frame publish() time in microseconds, one value per frame."""
    image = np.zeros((480, 640, 3), np.uint8)
    out = []
    for i in range(frames):
        frame = Frame(image, i, time.monotonic(), time.time())
        t0 = time.perf_counter()
        sink.publish(frame, poses)
        out.append((time.perf_counter() - t0) * 1e6)
        sink._outbox = type(sink._outbox)(sink.settings.queue_size)  # no broker: keep the queue from filling
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()
    settings = MqttSettings(device_id="bench", image=False)
    plain = MqttSink(settings)
    device = MqttSink(settings, MqttSetup(zones=tuple(named_zones(RULES)), rules=tuple(r.name for r in RULES)))
    five = people(5)
    print("publish() per frame, 5 PoseNet people, median us (interleaved runs of 200 frames):")
    results = {"no zones": [], "3 zones, 3 rules": []}
    for _ in range(args.frames // 200):
        results["no zones"] += publish_us(plain, five, 200)
        results["3 zones, 3 rules"] += publish_us(device, five, 200)
    for name, values in results.items():
        print(f"  {name:18s} {statistics.median(values):7.1f}")
    print(f"  ratio              {statistics.median(results['3 zones, 3 rules']) / statistics.median(results['no zones']):7.2f}")

    print("picture: the loop's copy against the encoder thread's work, median ms over 30:")
    for w, h in ((640, 480), (1280, 720), (1920, 1080)):
        image = np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)
        poses = people(5)
        copies, encodes, sizes = [], [], []
        for _ in range(30):
            t0 = time.perf_counter()
            image.copy()
            copies.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            sizes.append(len(encode_picture(image, poses, 640)))
            encodes.append((time.perf_counter() - t0) * 1e3)
        print(f"  {w}x{h}: copy {statistics.median(copies):.2f} ms (loop), draw+scale+encode "
              f"{statistics.median(encodes):.1f} ms (encoder thread), {statistics.median(sizes) / 1024:.0f} KiB "
              "(noise image: a worst case for JPEG)")
    video = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")) / "data" / "video" / "room_pair.mp4"
    capture = cv2.VideoCapture(str(video))
    ok, real = capture.read()
    capture.release()
    if ok:
        jpeg = encode_picture(real, people(2), 640)
        print(f"  {video.name} frame ({real.shape[1]}x{real.shape[0]}), 2 people drawn: {len(jpeg) / 1024:.0f} KiB")
    plain.close()
    device.close()


if __name__ == "__main__":
    main()
