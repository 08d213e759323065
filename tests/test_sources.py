"""Frame sources on real files and folders, and the Pi camera through a fake picamera2 module (hardware edge)."""

from __future__ import annotations

import os
import shutil
import struct
import sys
import time
import zlib

import cv2
import numpy as np
import pytest

import fake_picamera2
from commandline import assert_one_line_error, piposer
from mjpeg_server import MjpegServer
from conftest import DATA
from piposer import config
from piposer.errors import PiposerError
from piposer.sources import LiveFeed, PiCamera2Device, Playback, SourceSettings, open_source

VIDEO = DATA / "video" / "room_pair.mp4"
STILLS = DATA / "tflite_pose_testdata"
QUIET = {"log": lambda _: None}


@pytest.fixture(scope="module")
def video_frames() -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while (ok_image := capture.read())[0]:
        frames.append(ok_image[1])
    capture.release()
    return frames[:12]


def read_all(source, limit=10_000):
    frames = []
    while len(frames) < limit and (frame := source.read()) is not None:
        frames.append(frame)
    return frames


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- files, folders, globs ------------------------------------------------------------------


def test_video_file_is_read_frame_by_frame_to_the_end(video_frames):
    source = open_source(SourceSettings(source=str(VIDEO)), **QUIET)
    assert isinstance(source, Playback) and not source.live
    frames = read_all(source)
    assert [f.index for f in frames] == list(range(72))
    assert source.finished and source.read() is None
    assert frames[0].image.shape == (1080, 1920, 3)
    np.testing.assert_array_equal(frames[3].image, video_frames[3])
    assert all(a.timestamp <= b.timestamp for a, b in zip(frames, frames[1:]))
    source.close()


def test_looping_file_starts_over():
    source = open_source(SourceSettings(source=str(VIDEO), loop=True), **QUIET)
    frames = read_all(source, limit=150)
    assert len(frames) == 150 and not source.finished
    np.testing.assert_array_equal(frames[72].image, frames[0].image)
    source.close()


def test_image_folder_and_glob():
    folder = read_all(open_source(SourceSettings(source=str(STILLS)), **QUIET))
    assert len(folder) == 3  # image1.png, image2.jpeg, image3.jpeg in name order
    np.testing.assert_array_equal(folder[0].image, cv2.imread(str(STILLS / "image1.png")))
    jpegs = read_all(open_source(SourceSettings(source=str(STILLS / "*.jpeg")), **QUIET))
    assert [f.image.shape for f in jpegs] == [cv2.imread(str(STILLS / n)).shape for n in ("image2.jpeg", "image3.jpeg")]


@pytest.mark.parametrize("value, message", [
    ("/nonexistent/clip.mp4", "source = '/nonexistent/clip.mp4': no such file"),
    ("/nonexistent/*.jpg", "glob matches no files"),
    ("/dev/video97", "source = '/dev/video97': no such camera device"),
])
def test_bad_source_names_the_value(value, message):
    with pytest.raises(PiposerError, match=message.replace("*", r"\*").replace(".", r"\.")):
        open_source(SourceSettings(source=value), **QUIET)


def test_empty_folder_and_unopenable_stream(tmp_path):
    with pytest.raises(PiposerError, match="folder has no images"):
        open_source(SourceSettings(source=str(tmp_path)), **QUIET)
    with pytest.raises(PiposerError, match="cannot open rtsp://127.0.0.1:9/none"):
        open_source(SourceSettings(source="rtsp://127.0.0.1:9/none"), **QUIET)


@pytest.mark.parametrize("table, message", [
    ({"fps": 0}, "source.fps must be within 0..240"),
    ({"lores_width": 320}, "source.lores_width and source.lores_height must be set together"),
    ({"lores_width": 800, "lores_height": 600}, "must not exceed source.width/height"),
    ({"source": -1}, "source.source must be a camera index"),
    ({"source": 1.5}, "source.source"),
    ({"colour": "red"}, "unknown key 'source.colour'"),
])
def test_settings_are_validated_with_the_key_named(table, message):
    with pytest.raises(PiposerError, match=message):
        config.build(config.Config, {"source": table}, "")


# -- picamera2 (fake module at the hardware edge) ------------------------------------------------


def test_picamera2_main_stream_is_bgr_in_memory_and_configured(monkeypatch, video_frames):
    cam = fake_picamera2.install(monkeypatch, video_frames)
    settings = SourceSettings(source="picamera2", width=640, height=360, fps=15)
    source = open_source(settings, **QUIET)
    assert isinstance(source, LiveFeed) and source.live
    frame = source.read(timeout=2)
    camera = cam.instances[0]
    assert camera.config["main"] == {"size": (640, 360), "format": "RGB888"}
    assert camera.config["lores"] is None and camera.config["controls"] == {"FrameRate": 15.0}
    # "RGB888" arrives as B,G,R: the frame must be passed on untouched (no channel swap)
    served = next(a for a in camera.served if np.shares_memory(a, frame.image))
    np.testing.assert_array_equal(frame.image, served)
    expected = cv2.resize(video_frames[0], (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.image.astype(int) - expected).mean() < 25  # some frame of the clip, same colours
    source.close()
    assert camera.closed and not camera.started


def test_picamera2_lores_stream_feeds_inference(monkeypatch, video_frames):
    cam = fake_picamera2.install(monkeypatch, video_frames[:1])
    source = open_source(SourceSettings(source="picamera2", width=1280, height=720, lores_width=320, lores_height=180),
                         **QUIET)
    frame = source.read(timeout=2)
    source.close()
    assert cam.instances[0].config["lores"] == {"size": (320, 180), "format": "YUV420"}
    assert frame.image.shape == (180, 320, 3)
    expected = cv2.resize(video_frames[0], (320, 180), interpolation=cv2.INTER_AREA)
    assert np.abs(frame.image.astype(int) - expected).mean() < 4  # YUV420 round trip, colours intact


def test_live_source_hands_out_only_the_newest_frame(monkeypatch, video_frames):
    cam = fake_picamera2.install(monkeypatch, video_frames, interval=0.005)
    source = open_source(SourceSettings(source="picamera2"), **QUIET)
    source.read(timeout=2)
    time.sleep(0.2)  # a slow model: frames keep arriving meanwhile
    frame = source.read(timeout=1)
    age = time.monotonic() - frame.timestamp
    camera = cam.instances[0]
    newest = [i for i, a in enumerate(camera.served) if np.shares_memory(a, frame.image)][0]
    assert newest >= len(camera.served) - 3, (newest, len(camera.served))
    assert age < 0.15  # a frame queued before the 0.2 s wait would be older than that
    assert source.stats()["dropped"] >= 5
    assert source.read(timeout=0) is None or source.read(timeout=0) is None  # nothing stale is queued
    source.close()


def test_lost_camera_is_reopened_with_backoff_and_reported(monkeypatch, video_frames):
    cam = fake_picamera2.install(monkeypatch, video_frames, interval=0.002, fail_after=5)
    source = open_source(SourceSettings(source="picamera2", reopen_min=0.02, reopen_max=0.05), **QUIET)
    cam.failed_opens = 3  # unplugged: the first reopen attempts fail
    wait_for(lambda: not source.connected)
    lost = source.events()
    assert [e.kind for e in lost] == ["source_lost"]
    assert "camera disconnected" in lost[0].fields["reason"]
    assert source.stats()["connected"] is False and source.stats()["outage_s"] >= 0
    wait_for(lambda: source.connected)
    restored = source.events()
    assert [e.kind for e in restored] == ["source_restored"] and restored[0].fields["outage_s"] >= 0.02 * 3
    assert source.read(timeout=1) is not None
    stats = source.stats()
    assert stats["reopens"] == 1 and stats["outage_total_s"] >= 0.06 and stats["outage_s"] == 0
    assert len(cam.instances) == 2 and cam.instances[0].closed  # the dead camera was released
    source.close()
    assert cam.instances[1].closed


def test_camera_missing_at_start_is_an_error(monkeypatch, video_frames):
    fake_picamera2.install(monkeypatch, video_frames, failed_opens=1)
    with pytest.raises(PiposerError, match="source: cannot open picamera2 camera 0 .*did not complete"):
        open_source(SourceSettings(source="picamera2"), **QUIET)


# -- auto -----------------------------------------------------------------------------------------

no_video0 = pytest.mark.skipif(os.path.exists("/dev/video0"), reason="this machine has a /dev/video0")


def test_auto_prefers_the_pi_camera_and_says_so(monkeypatch, video_frames):
    fake_picamera2.install(monkeypatch, video_frames)
    said = []
    source = open_source(SourceSettings(), log=said.append)
    assert isinstance(source.device, PiCamera2Device)
    assert said == ["source auto: using the Pi camera via picamera2"]
    source.close()


@no_video0
def test_auto_without_any_camera_says_what_it_tried(monkeypatch, video_frames):
    fake_picamera2.install(monkeypatch, video_frames, cameras=[])
    with pytest.raises(PiposerError, match=r"source = 'auto' found no camera: picamera2: libcamera sees no camera.*"
                                           r"/dev/video0: not present"):
        open_source(SourceSettings(), **QUIET)
    monkeypatch.setitem(sys.modules, "picamera2", None)  # not installed at all
    with pytest.raises(PiposerError, match="python3-picamera2 is not installed"):
        open_source(SourceSettings(), **QUIET)
    with pytest.raises(PiposerError, match="source = 'picamera2': python3-picamera2 is not installed"):
        open_source(SourceSettings(source="picamera2"), **QUIET)


def test_close_leaves_a_stalled_camera_to_the_capture_thread(monkeypatch, video_frames):
    """A read stuck in the device (stalled stream) must not have the device closed under it; the capture
    thread closes it once the read returns."""
    cam = fake_picamera2.install(monkeypatch, video_frames, interval=0.01)
    source = open_source(SourceSettings(source="picamera2"), **QUIET)
    assert source.read(timeout=5) is not None
    cam.stall.set()
    time.sleep(0.1)  # the capture thread is now blocked inside capture_array
    source.close_timeout = 0.2
    source.close()
    camera = cam.instances[0]
    assert not camera.closed
    cam.stall.clear()
    wait_for(lambda: camera.closed, timeout=5)


# -- network streams: a real MJPEG server that freezes and goes away -------------------------

STREAM = {"reopen_min": 0.1, "reopen_max": 0.4, "stall_timeout": 1.0}


def events_until(source, kind, timeout=10.0):
    """Read as the frame loop does until an event of `kind` shows up; all events seen meanwhile."""
    seen = []

    def arrived():
        source.read(timeout=0.05)
        seen.extend(source.events())
        return any(e.kind == kind for e in seen)

    wait_for(arrived, timeout)
    return seen


def test_a_frozen_stream_is_an_outage_within_the_stall_timeout():
    with MjpegServer() as camera:
        source = open_source(SourceSettings(source=camera.url, **STREAM), **QUIET)
        try:
            assert source.read(timeout=5) is not None
            camera.frozen.set()
            frozen_at = time.monotonic()
            while source.read(timeout=0.2) is not None:  # what was already on the way
                pass
            lost = [e for e in events_until(source, "source_lost", timeout=3) if e.kind == "source_lost"]
            assert time.monotonic() - frozen_at < 2.5
            assert lost[0].fields["reason"].startswith("stalled: no frame for 1.")
            stats = source.stats()
            assert stats["connected"] is False and stats["stalls"] == 1 and stats["outage_s"] > 0
            camera.frozen.clear()
            restored = events_until(source, "source_restored")
            assert [e.kind for e in restored].count("source_lost") == 0  # the reopen is part of the same outage
            frame = source.read(timeout=5)
            assert frame is not None and abs(int(frame.image.mean()) - (camera.sent - 1) % 256) <= 3
            stats = source.stats()
            assert stats["connected"] is True and stats["reopens"] == 1 and stats["outage_total_s"] >= 1.0
        finally:
            source.close()


def test_a_stream_that_goes_away_and_comes_back_is_reopened():
    camera = MjpegServer().start()
    source = open_source(SourceSettings(source=camera.url, **STREAM), **QUIET)
    try:
        assert source.read(timeout=5) is not None
        camera.stop()
        lost = [e for e in events_until(source, "source_lost", timeout=3) if e.kind == "source_lost"]
        assert len(lost) == 1 and source.stats()["connected"] is False
        camera.start()  # same port
        events_until(source, "source_restored")
        assert source.read(timeout=5) is not None and source.stats()["reopens"] == 1
    finally:
        source.close()
        camera.stop()


def test_a_stalled_pi_camera_is_an_outage(monkeypatch, video_frames):
    cam = fake_picamera2.install(monkeypatch, video_frames, interval=0.01)
    source = open_source(SourceSettings(source="picamera2", **STREAM), **QUIET)
    try:
        assert source.read(timeout=5) is not None
        cam.stall.set()
        lost = [e for e in events_until(source, "source_lost", timeout=3) if e.kind == "source_lost"]
        assert lost[0].fields["reason"].startswith("stalled") and source.stats()["stalls"] == 1
        cam.stall.clear()
        events_until(source, "source_restored")
        assert source.stats()["connected"] is True
    finally:
        source.close()


def huge_png(path, side=50000):
    """A valid PNG whose header claims side x side pixels (what a hostile or broken upload looks like)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_a_folder_skips_unreadable_images_with_a_warning(tmp_path):
    good = [STILLS / "image1.png", STILLS / "image2.jpeg"]
    shutil.copy(good[0], tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes((STILLS / "image2.jpeg").read_bytes()[:200])  # truncated
    huge_png(tmp_path / "c.png")
    shutil.copy(good[1], tmp_path / "d.jpeg")
    warnings = []
    source = open_source(SourceSettings(source=str(tmp_path)), log=warnings.append)
    frames = read_all(source)
    np.testing.assert_array_equal(frames[0].image, cv2.imread(str(good[0])))
    np.testing.assert_array_equal(frames[1].image, cv2.imread(str(good[1])))
    assert len(frames) == 2 and source.device.skipped == 2
    assert [w.split(":")[1].strip().split()[-1] for w in warnings] == [str(tmp_path / "b.jpg"), str(tmp_path / "c.png")]
    assert all(w.startswith("warning: cannot read image ") and w.endswith(": skipped") for w in warnings)


def test_a_looping_folder_of_only_bad_images_ends_instead_of_spinning(tmp_path):
    huge_png(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    source = open_source(SourceSettings(source=str(tmp_path), loop=True), **QUIET)
    assert source.read() is None and source.finished


def test_an_image_claiming_50000x50000_pixels_is_one_line(tmp_path):
    image = huge_png(tmp_path / "huge.png")
    result = piposer("image", "--out", tmp_path / "out", image, cwd=tmp_path)
    assert_one_line_error(result, f"cannot read image {image}: its header claims more pixels than OpenCV reads")


def test_stream_credentials_never_appear_in_errors_stats_or_events():
    with pytest.raises(PiposerError) as refused:
        open_source(SourceSettings(source="rtsp://admin:s3cret@127.0.0.1:9/stream1", **STREAM), **QUIET)
    assert "s3cret" not in str(refused.value) and "rtsp://admin:***@127.0.0.1:9/stream1" in str(refused.value)
    camera = MjpegServer().start()
    source = open_source(SourceSettings(source=camera.url.replace("//", "//admin:s3cret@"), **STREAM), **QUIET)
    try:
        assert source.read(timeout=5) is not None
        camera.stop()
        lost = events_until(source, "source_lost", timeout=3)
        assert lost[-1].fields["source"] == f"http://admin:***@127.0.0.1:{camera.port}/stream.mjpg"
        assert "s3cret" not in repr(source.stats()) + repr([e.fields for e in lost])
    finally:
        source.close()
