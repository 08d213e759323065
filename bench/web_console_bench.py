"""What watching the web console's live view costs the frame loop: loop fps and per-frame latency with no
viewer, one viewer and three viewers, side by side in one run.

The real appliance (PoseNet, tracker, the web server with the console) runs over room_pair.mp4 replayed
forever, as fast as it goes. Viewers are aiohttp clients reading /live.mjpg in a child process (so their
decoding does not compete for this process's GIL, as a phone's would not). Each round measures every
condition for `--seconds` in turn (interleaved, so machine load hits all alike); reported are the medians
over rounds of fps and of the round's median latency (capture to last sink), the JPEGs the live view
made per second, and each condition's fps ratio to no viewer.
Usage: python bench/web_console_bench.py [--rounds 5] [--seconds 8] [--video PATH]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED}/models{os.pathsep}{SHARED}/models/converted_from_tfjs")
sys.path.insert(0, str(ROOT))

from piposer import config  # noqa: E402
from piposer.runtime.controller import App  # noqa: E402
from piposer.sinks.mqtt_settings import MqttSettings  # noqa: E402
from piposer.sinks.web_settings import WebSettings  # noqa: E402

VIEWERS = """
import asyncio, sys
import aiohttp
async def watch(url):
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            async for chunk in response.content.iter_any():
                pass
async def main(url, n):
    await asyncio.gather(*(watch(url) for _ in range(n)))
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(app: App, live, seconds: float) -> tuple[float, float, float]:
    """(fps, median latency ms, JPEGs per second) over the next `seconds`, after a second of settling."""
    time.sleep(1.0)
    frames, encoded, started = app.stats.frames, live.encoded, time.monotonic()
    time.sleep(seconds)
    done, elapsed = app.stats.frames - frames, time.monotonic() - started
    latencies = list(app.stats.latency)[-done:]
    return done / elapsed, statistics.median(latencies) * 1000, (live.encoded - encoded) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--video", default=str(SHARED / "data" / "video" / "room_pair.mp4"))
    args = parser.parse_args()
    cfg = config.load(None)
    cfg.source.source, cfg.source.loop = args.video, True
    cfg.mqtt = MqttSettings(enabled=False)
    cfg.web = WebSettings(enabled=True, port=free_port())
    cfg.loop.stats_window = 2000
    conditions = {"no viewer": 0, "1 viewer": 1, "3 viewers": 3}
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in conditions}
    with App(cfg, log=lambda line: None) as app:
        live = next(s for s in app.sinks.sinks if s.name == "WebSocketSink").console.live
        loop = threading.Thread(target=app.run, daemon=True)
        loop.start()
        time.sleep(3)  # model warm, video decoding
        url = f"http://127.0.0.1:{cfg.web.port}/live.mjpg"
        for round_ in range(args.rounds):
            for name, n in conditions.items():
                viewers = subprocess.Popen([sys.executable, "-c", VIEWERS, url, str(n)]) if n else None
                try:
                    results[name].append(measure(app, live, args.seconds))
                finally:
                    if viewers is not None:
                        viewers.terminate()
                        viewers.wait(10)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1][0]:.2f} fps" for k, v in results.items()),
                  flush=True)
        app.stop()
        loop.join(30)
    base = statistics.median(r[0] for r in results["no viewer"])
    print(f"\n{args.video}, {cfg.model.name}, {args.rounds} rounds of {args.seconds:g} s per condition (medians)")
    print(f"{'condition':<12}{'fps':>8}{'ratio':>8}{'latency ms':>12}{'JPEG/s':>8}")
    for name, rows in results.items():
        fps = statistics.median(r[0] for r in rows)
        print(f"{name:<12}{fps:>8.2f}{fps / base:>8.3f}{statistics.median(r[1] for r in rows):>12.1f}"
              f"{statistics.median(r[2] for r in rows):>8.2f}")


if __name__ == "__main__":
    main()
