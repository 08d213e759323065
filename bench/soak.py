"""Soak: a long run of the whole loop (looping real video -> PoseNet -> tracker -> MQTT to a local Mosquitto),
reporting resident memory and fps as it goes. Target: RSS growth under 10 MB from warm-up to the end.

    make soak                                    # 20,000 frames
    .venv/bin/python bench/soak.py --frames 300  # quick check

A subscriber (in this process, storing nothing) counts the pose messages that actually arrive, so a
silently dead MQTT path shows up too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED / 'models'}:{SHARED / 'models' / 'converted_from_tfjs'}")

import paho.mqtt.client as paho  # noqa: E402
from broker import Broker  # noqa: E402
from piposer import config  # noqa: E402
from piposer.runtime.controller import App  # noqa: E402
from piposer.runtime.pipeline import rss_mb  # noqa: E402
from piposer.sinks.mqtt import MqttSettings  # noqa: E402


class Counter:
    """Counts messages on one topic (and keeps none: a subscriber storing 20,000 payloads would be the leak)."""

    def __init__(self, broker: Broker, topic: str):
        self.count = 0
        self.ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if not self.ready.wait(5):
            raise SystemExit("soak: subscriber could not subscribe")

    def _on_message(self, *_):
        self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--chunk", type=int, default=1000, help="report every N frames")
    parser.add_argument("--warmup", type=int, default=None, help="frames before the baseline RSS (default: one chunk)")
    parser.add_argument("--source", default=str(SHARED / "data" / "video" / "room_pair.mp4"), help="video, folder or glob (looped)")
    parser.add_argument("--model", default="posenet")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="PoseNet input size, e.g. 145 257 for a quicker run (default: the model's)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the broker is stopped too
    warmup = min(args.warmup if args.warmup is not None else args.chunk, args.frames)

    with tempfile.TemporaryDirectory() as tmp, Broker(Path(tmp)) as broker:
        cfg = config.load(None)
        cfg.model.name = args.model
        cfg.posenet.input_size = args.input_size
        cfg.source.source, cfg.source.loop = args.source, True
        cfg.loop.stats_interval = 5.0
        cfg.mqtt = MqttSettings(host=broker.host, port=broker.port, device_id="soak", discovery=False)
        counter = Counter(broker, "piposer/soak/poses")
        try:
            rss_before_open = rss_mb()
            rows = []
            with App(cfg, log=lambda line: None) as app:
                rss_open = rss_mb()
                started = last_t = time.monotonic()
                last_n = 0
                targets = sorted({warmup, *range(args.chunk, args.frames, args.chunk), args.frames})
                size = f" at {args.input_size[0]}x{args.input_size[1]}" if args.input_size else ""
                print(f"soak: {args.frames} frames of {Path(args.source).name} with {args.model}{size}, MQTT to "
                      f"{broker.host}:{broker.port}; RSS {rss_before_open:.1f} MB before open, {rss_open:.1f} MB after")
                print("| frames | elapsed s | fps (window) | RSS MB |")
                print("|---|---|---|---|")
                for target in targets:
                    if app.run(max_frames=target) != "finished":
                        raise SystemExit("soak: the loop ended early")
                    now = time.monotonic()
                    n = app.stats.frames
                    rows.append({"frames": n, "elapsed_s": round(now - started, 1),
                                 "fps": round((n - last_n) / (now - last_t), 2), "rss_mb": round(rss_mb(), 1)})
                    print(f"| {n} | {rows[-1]['elapsed_s']} | {rows[-1]['fps']} | {rows[-1]['rss_mb']} |", flush=True)
                    last_n, last_t = n, now
                stats = app.stats_dict()
            time.sleep(0.5)
            received = counter.count
        finally:
            counter.close()
    baseline = next(r for r in rows if r["frames"] >= warmup)
    result = {
        "frames": rows[-1]["frames"],
        "elapsed_s": rows[-1]["elapsed_s"],
        "fps": round(rows[-1]["frames"] / rows[-1]["elapsed_s"], 2),
        "rss_after_open_mb": round(rss_open, 1),
        "rss_after_warmup_mb": baseline["rss_mb"],
        "rss_end_mb": rows[-1]["rss_mb"],
        "rss_growth_mb": round(rows[-1]["rss_mb"] - baseline["rss_mb"], 1),
        "mqtt_poses_received": received,
        "latency_ms": stats["latency_ms"],
        "stages_ms": stats["stages_ms"],
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    verdict = "OK" if result["rss_growth_mb"] < 10 else "OVER TARGET"
    print(f"soak: RSS {baseline['rss_mb']} MB after {warmup} frames -> {result['rss_end_mb']} MB after "
          f"{result['frames']} ({result['rss_growth_mb']:+.1f} MB, target < 10 MB: {verdict}); "
          f"{result['fps']} fps; {received} pose messages received")
    return 0 if result["rss_growth_mb"] < 10 and received > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
