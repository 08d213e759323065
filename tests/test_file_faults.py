"""Output files under faults: a full disk, two writers for one name, signals, and the umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from piposer.errors import OutputError
from piposer.sinks.files import AtomicFile, PoseDataWriter, VideoWriter, discard_all, free_path, write_bytes, write_image
from piposer.types import COCO17, Box, Frame, Keypoint, Pose

from conftest import DATA

VIDEO = DATA / "video" / "room_pair.mp4"
PREVIOUS = b"a good file from an earlier run\n" * 4


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))  # dot files too: temp files are hidden


@pytest.fixture
def full_disk(tmp_path):
    """A 200 kB tmpfs: writing more than that is ENOSPC. Needs root (mount); skipped otherwise."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def video_frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < n and (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    assert len(frames) == n
    return frames


def pose(w: int = 640, h: int = 480) -> Pose:
    kps = tuple(Keypoint(name, 100.0 + i, 200.0 + i, (100 + i) / w, (200 + i) / h, 0.9, True)
                for i, name in enumerate(COCO17.keypoints))
    return Pose(kps, 0.9, Box(0, 0, 10, 10), track_id=1)


# -- full disk ---------------------------------------------------------------------------------

def test_full_disk_video_raises_and_keeps_previous_file(full_disk):
    target = full_disk / "out.mp4"
    target.write_bytes(PREVIOUS)  # the good file an --overwrite run would replace
    frames = video_frames(40)  # ~1 MB of mp4v: does not fit
    writer = VideoWriter(target, 28.0, (frames[0].shape[1], frames[0].shape[0]))
    with pytest.raises(OutputError, match=f"^cannot write {target}: "):
        for image in frames:
            writer.write(image)
        writer.close(commit=True)
    writer.close()  # idempotent
    assert target.read_bytes() == PREVIOUS
    assert names(full_disk) == ["out.mp4"]


def test_full_disk_bytes_and_image_raise_and_keep_previous_file(full_disk):
    target = full_disk / "doc.json"
    target.write_bytes(PREVIOUS)
    with pytest.raises(OutputError, match=f"^cannot write {target}: No space left on device"):
        write_bytes(target, b"x" * 400_000)
    noise = np.random.default_rng(1).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    with pytest.raises(OutputError, match="^cannot write .*pic.png: No space left on device"):
        write_image(full_disk / "pic.png", noise)  # ~1 MB of incompressible PNG
    assert target.read_bytes() == PREVIOUS
    assert names(full_disk) == ["doc.json"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_full_disk_pose_data_raises_and_keeps_previous_file(full_disk, suffix):
    target = full_disk / f"poses{suffix}"
    target.write_bytes(PREVIOUS)
    writer = PoseDataWriter(target, COCO17, 28.0)
    with pytest.raises(OutputError, match=f"^cannot write {target}: No space left on device"):
        for i in range(2000):  # ~2 MB of rows
            writer.publish(Frame(np.zeros((1, 1, 3), np.uint8), i, 0.0), [pose(), pose()])
        writer.close(commit=True)
    writer.close()
    assert target.read_bytes() == PREVIOUS
    assert names(full_disk) == [target.name]


def test_video_with_dropped_frames_is_not_committed(tmp_path):
    """OpenCV silently drops a frame of the wrong size; the frame count check catches what it cannot say."""
    target = tmp_path / "v.mp4"
    writer = VideoWriter(target, 10.0, (64, 48))
    writer.write(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(OutputError, match=f"^cannot write {target}: frame 1 is 32x32, not 64x48"):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert names(tmp_path) == []


def test_good_video_is_checked_and_committed(tmp_path):
    frames = video_frames(5)
    with VideoWriter(tmp_path / "v.mp4", 28.0, None) as writer:
        for image in frames:
            writer.write(image)
        assert writer.finish() == tmp_path / "v.mp4"
    assert int(cv2.VideoCapture(str(tmp_path / "v.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert names(tmp_path) == ["v.mp4"]


# -- one name, two writers ---------------------------------------------------------------------

def test_two_writers_for_one_free_name_get_different_names(tmp_path):
    target = tmp_path / "out.mp4"
    first, second = AtomicFile(free_path(target, False)), AtomicFile(free_path(target, False))
    assert (first.target, second.target) == (target, tmp_path / "out-1.mp4")
    assert free_path(target, False) == tmp_path / "out-2.mp4"  # the reservations are visible to everyone
    first.path.write_bytes(b"first")
    second.path.write_bytes(b"second")
    assert (first.commit(), second.commit()) == (target, tmp_path / "out-1.mp4")
    assert (target.read_bytes(), (tmp_path / "out-1.mp4").read_bytes()) == (b"first", b"second")
    assert names(tmp_path) == ["out-1.mp4", "out.mp4"]


def test_reservation_by_flag_and_removed_on_discard(tmp_path):
    target = tmp_path / "poses.csv"
    target.write_text("keep")
    kept = AtomicFile(target, overwrite=False)
    assert kept.target == tmp_path / "poses-1.csv"
    replacing = AtomicFile(target, overwrite=True)
    assert replacing.target == target
    kept.discard()
    replacing.discard()
    replacing.discard()
    assert names(tmp_path) == ["poses.csv"] and target.read_text() == "keep"


def test_discard_leaves_alone_a_file_that_replaced_the_reservation(tmp_path):
    f = AtomicFile(tmp_path / "a.json")
    (tmp_path / "a.json").unlink()
    (tmp_path / "a.json").write_text("someone else's")
    f.discard()
    assert names(tmp_path) == ["a.json"]


# -- every exit path ---------------------------------------------------------------------------

def test_context_manager_discards_unless_committed(tmp_path):
    with pytest.raises(RuntimeError):
        with AtomicFile(tmp_path / "x.mp4") as f:
            f.path.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    with AtomicFile(tmp_path / "y.mp4") as f:
        f.path.write_bytes(b"done")
        f.commit()
    f.discard()  # after commit: nothing to do
    assert names(tmp_path) == ["y.mp4"]


def test_discard_all_removes_every_uncommitted_file(tmp_path):
    files = [AtomicFile(tmp_path / f"{i}.csv") for i in range(3)]
    files[0].path.write_bytes(b"a")
    files[0].commit()
    discard_all()
    assert names(tmp_path) == ["0.csv"]


@pytest.mark.parametrize("how", ["sigterm", "exit"])
def test_temp_files_removed_on_signal_and_exit(tmp_path, how):
    """SIGTERM turned into an exception (as the CLI does) unwinds the with; a bare exit runs the atexit hook."""
    script = textwrap.dedent(f"""
        import signal, sys, time
        from pathlib import Path
        from piposer.sinks.files import AtomicFile, PoseDataWriter
        from piposer.types import COCO17
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
        held = AtomicFile(Path({str(tmp_path)!r}) / "held.mp4")  # never closed: atexit's job
        with PoseDataWriter(Path({str(tmp_path)!r}) / "poses.csv", COCO17, 30.0):
            print("ready", flush=True)
            if {how!r} == "exit":
                sys.exit(3)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout.readline() == "ready\n"
    if how == "sigterm":
        assert len(names(tmp_path)) == 4  # two placeholders, two temp files
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == (143 if how == "sigterm" else 3)
    assert names(tmp_path) == []


# -- permissions -------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_files_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        written = [write_bytes(tmp_path / f"{uuid.uuid4().hex}.json", b"{}")]
        written.append(PoseDataWriter(tmp_path / "p.jsonl", COCO17, 30.0).close(commit=True))
        image = video_frames(1)[0]
        video = VideoWriter(tmp_path / "v.mp4", 28.0, (image.shape[1], image.shape[0]))
        video.write(image)
        written.append(video.close(commit=True))
    finally:
        os.umask(old)
    for path in written:
        assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~mask), path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_piposer_video_interrupted_by_a_signal_leaves_nothing_and_keeps_the_earlier_output(tmp_path, sig):
    """The real CLI on the sample video, signalled mid-run: exit 128+signal with a one-line message, the
    earlier output (asked to be overwritten) untouched, and no temporary or placeholder file left."""
    out, data = tmp_path / "out.mp4", tmp_path / "out.csv"
    out.write_bytes(PREVIOUS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "piposer", "video", str(VIDEO), "--out", str(out), "--data", str(data), "--overwrite"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    deadline = 60
    while deadline and len(names(tmp_path)) < 3:  # the earlier file plus the run's temporary files
        deadline -= 1
        try:
            proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            pass
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert err.strip().splitlines()[-1] == f"piposer: stopped by {signal.Signals(sig).name}; nothing half-written was kept"
    assert names(tmp_path) == ["out.mp4"] and out.read_bytes() == PREVIOUS
