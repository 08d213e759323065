"""What the installation sinks add per frame: OSC with 1 and 5 destinations, the WebSocket stream with
1 and 2 browsers; and how big their messages are.

Poses come from PoseNet and the tracker on the first 60 frames of room_pair.mp4 (computed once, up
front). Then, per round, each configuration publishes the same frames in turn (interleaved, so machine
load hits all alike): no sink, one destination, five alike (one encoding shared), five with different
prefixes (five encodings), one that nobody listens on, and the WebSocket sink with one piposer-shape
client and with a piposer and an ml5 client. Receivers (python-osc UDP servers, aiohttp WebSocket
clients) decode everything in a child process, so they do not compete for this one's GIL. Reports the median microseconds per
frame of `OscSink.publish`, the ratio to no sink, and bytes per frame bundle for each layout.
Usage: python bench/art_sinks_bench.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED}/models{os.pathsep}{SHARED}/models/converted_from_tfjs")

import cv2

from piposer import PoseNet, Tracker
from piposer.sinks import Sink
from piposer.sinks.osc import OscSink, bundles, pose_messages
from piposer.sinks.osc_settings import OscSettings
from piposer.sinks.payloads import poses_payload
from piposer.sinks.web_settings import WebSettings
from piposer.sinks.websocket import WebSlice, WebSocketSink, ml5_payload
from piposer.types import Frame


def recorded(count: int) -> list[tuple[Frame, list]]:
    capture = cv2.VideoCapture(str(SHARED / "data" / "video" / "room_pair.mp4"))
    tracker, out = Tracker(), []
    with PoseNet() as net:
        for index in range(count):
            ok, image = capture.read()
            if not ok:
                break
            frame = Frame(image, index, index / 30.0)
            out.append((frame, tracker.update(net.estimate(frame), frame.timestamp)))
    return out


RECEIVERS = """
import asyncio, sys, threading
import aiohttp
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
servers = []
for _ in range(int(sys.argv[1])):
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda *args: None)
    servers.append(BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher))
    threading.Thread(target=servers[-1].serve_forever, daemon=True).start()
print(" ".join(str(s.server_address[1]) for s in servers), flush=True)

async def browse(url):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            async for message in ws:
                pass

def browsers(urls):
    async def all_of_them():
        await asyncio.gather(*(browse(url) for url in urls))
    asyncio.run(all_of_them())

for line in sys.stdin:  # each line: WebSocket URLs to watch until this process ends
    threading.Thread(target=browsers, args=(line.split(),), daemon=True).start()
"""


def receivers(count: int) -> tuple[subprocess.Popen, list[int]]:
    """python-osc UDP servers decoding everything, in a process of their own (not competing for our GIL),
    which also opens the WebSocket clients it is sent the URLs of."""
    process = subprocess.Popen([sys.executable, "-c", RECEIVERS, str(count)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    return process, [int(port) for port in process.stdout.readline().split()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def per_frame_us(sink: Sink, frames) -> float:
    start = time.perf_counter()
    for frame, poses in frames:
        sink.publish(frame, poses)
    return (time.perf_counter() - start) / len(frames) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    frames = recorded(60)
    people = statistics.mean(len(p) for _, p in frames)
    process, ports = receivers(5)
    sinks = {
        "no sink": Sink(),
        "1 destination": OscSink([OscSettings(port=ports[0])], log=lambda line: None),
        "5 destinations": OscSink([OscSettings(port=p) for p in ports], log=lambda line: None),
        "5 destinations, 5 shapes": OscSink([OscSettings(port=p, prefix=f"/p{n}") for n, p in enumerate(ports)],
                                            log=lambda line: None),
        "1 not listening": OscSink([OscSettings(port=9)], log=lambda line: None),
        "1 flat, 3 keypoints": OscSink([OscSettings(port=ports[0], layout="flat",
                                                    keypoints=["nose", "left_wrist", "right_wrist"])],
                                       log=lambda line: None),
    }
    web_one = WebSocketSink(WebSlice(WebSettings(enabled=True, port=free_port())), log=lambda line: None)
    web_two = WebSocketSink(WebSlice(WebSettings(enabled=True, port=free_port())), log=lambda line: None)
    process.stdin.write(f"ws://127.0.0.1:{web_one.settings.port}/poses ws://127.0.0.1:{web_two.settings.port}/poses "
                        f"ws://127.0.0.1:{web_two.settings.port}/poses?format=ml5\n")
    process.stdin.flush()
    while len(web_one.clients) < 1 or len(web_two.clients) < 2:
        time.sleep(0.01)
    sinks["websocket, 1 client"] = web_one
    sinks["websocket, piposer + ml5"] = web_two
    times: dict[str, list[float]] = {name: [] for name in sinks}
    for number in range(args.rounds):  # each round later in time: the sinks' rate caps see time go on
        later = [(replace(frame, timestamp=frame.timestamp + 10.0 * (number + 1)), poses) for frame, poses in frames]
        for name, sink in sinks.items():
            times[name].append(per_frame_us(sink, later))
    base = statistics.median(times["no sink"])
    print(f"{len(frames)} frames, {people:.2f} people per frame, {args.rounds} interleaved rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:22} {median:8.1f} us/frame   +{median - base:7.1f} us over no sink")
    for layout, keypoints in (("per_keypoint", []), ("flat", []), ("flat", ["nose", "left_wrist", "right_wrist"])):
        settings = OscSettings(layout=layout, keypoints=keypoints)
        sizes = [sum(map(len, bundles(pose_messages(f, p, settings)))) for f, p in frames]
        label = f"{layout}{' (3 keypoints)' if keypoints else ''}"
        print(f"bytes per frame bundle, {label:24} median {statistics.median(sizes):6.0f}, max {max(sizes)}")
    for shape, encode in (("piposer", lambda f, p: poses_payload(f, p, "posenet")), ("ml5", lambda f, p: ml5_payload(p))):
        sizes = [len(json.dumps(encode(f, p), separators=(",", ":"))) for f, p in frames]
        print(f"bytes per WebSocket message, {shape:19} median {statistics.median(sizes):6.0f}, max {max(sizes)}")
    for sink in sinks.values():
        sink.close()
    process.stdin.close()
    process.wait()


if __name__ == "__main__":
    main()
