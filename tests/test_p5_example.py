"""The p5.js example page, served by piposer, in a real headless Chromium: it draws the skeletons that the
WebSocket stream carries (pixels of its screenshot checked at the keypoints and along the bones)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from conftest import DATA
from piposer import PoseNet
from piposer.sinks.web_settings import WebSettings
from piposer.sinks.websocket import WebSlice, WebSocketSink
from piposer.sources import read_frame
from test_websocket import free_port

MAGENTA, GREEN = (255, 0, 255), (0, 255, 0)  # BGR as OpenCV reads the screenshot


@pytest.fixture(scope="module")
def frame_and_poses():
    frame = read_frame(DATA / "tflite_pose_testdata" / "image3.jpeg")
    with PoseNet() as net:
        return frame, net.estimate(frame)


def screenshot(url: str, width: int, height: int, path) -> np.ndarray:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: `make test-deps` installs it"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={path}", "--virtual-time-budget=4000", url],
                   capture_output=True, timeout=60, check=True)
    return cv2.imread(str(path))


def test_the_p5_example_draws_the_streamed_skeletons(tmp_path, frame_and_poses):
    frame, poses = frame_and_poses
    sink = WebSocketSink(WebSlice(WebSettings(enabled=True, port=free_port())), log=lambda line: None)
    stop = threading.Event()

    def camera():  # a 20 fps appliance, as far as the page can tell
        while not stop.is_set():
            sink.publish(frame, poses)
            time.sleep(0.05)

    threading.Thread(target=camera, daemon=True).start()
    try:
        image = screenshot(f"http://127.0.0.1:{sink.settings.port}/examples/p5", frame.width, frame.height,
                           tmp_path / "p5.png")
    finally:
        stop.set()
        sink.close()
    assert image.shape[:2] == (frame.height, frame.width)
    (pose,) = poses
    shown = [k for k in pose.keypoints if k.score > 0.3]
    assert len(shown) >= 12
    for k in shown:
        assert tuple(image[round(k.y), round(k.x)]) == MAGENTA, k.name
    names = pose.layout.keypoints
    shoulders = pose.keypoints[names.index("left_shoulder")], pose.keypoints[names.index("right_shoulder")]
    middle = (round((shoulders[0].x + shoulders[1].x) / 2), round((shoulders[0].y + shoulders[1].y) / 2))
    assert tuple(image[middle[1], middle[0]]) == GREEN  # the bone between them
    assert tuple(image[5, 5]) == (0, 0, 0) and (image.sum(axis=2) > 0).mean() < 0.1  # the rest is black


def test_p5_is_served_from_the_appliance_not_a_cdn():
    sink = WebSocketSink(WebSlice(WebSettings(enabled=True, port=free_port())), log=lambda line: None)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{sink.settings.port}/examples/p5").read().decode()
        library = urllib.request.urlopen(f"http://127.0.0.1:{sink.settings.port}/vendor/p5.min.js").read()
    finally:
        sink.close()
    assert '<script src="/vendor/p5.min.js">' in page and "://" not in page  # nothing from elsewhere
    assert library.startswith(b"/*! p5.js v1.11.13")
