"""The tracker's CPU time per frame, with and without keypoint smoothing, for this checkout and an older revision
side by side in one process, each running whole scenes in turn.

    python bench/tracker_cost.py [--against REV] [--people 10] [--frames 300]

Two scenes. *Walking*: a real pose (PoseNet's on the first frame of room_single.avi) copied and spread over
the 1920x1080 frame, each copy walking its own way with a little jitter (people apart from each other).
*Street*: the real poses PoseNet (default settings) finds in every frame of street_multi.avi, weak ones
included as the loop hands them over, timed on the frames with 10 or more (a crowd, people overlapping).
Both sides get fresh poses from their own `make_pose`, as their estimators would make them, and run the
whole scene in turns (twice, alternating). Times are the thread's CPU time, medians (walking: after the
first 10 frames).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's piposer, not whichever one the venv has installed
sys.path.insert(0, str(ROOT / "bench"))
from revision import OLD, sides  # noqa: E402

SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")).resolve()
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join(str(SHARED / d) for d in ("models", "models/converted_from_tfjs")))


def arrays(pose) -> tuple:
    """A pose as the arrays `make_pose` takes to make it again: (xy, scores, image size, keypoint threshold,
    score); the threshold is its lowest detected keypoint score, so the same keypoints come out detected."""
    threshold = min((k.score for k in pose.keypoints if k.detected), default=1.0)
    return pose.xy(), pose.scores(), pose.image_size, threshold, pose.score


def real_pose() -> tuple:
    """PoseNet's pose on the first frame of room_single.avi, as `arrays`."""
    import cv2

    from piposer import PoseNet

    ok, image = cv2.VideoCapture(str(SHARED / "data/video/room_single.avi")).read()
    with PoseNet() as net:
        (pose,) = net.estimate(image)[:1]
    return arrays(pose)


def street_poses() -> list[list[tuple]]:
    """Every frame's poses on street_multi.avi (this checkout's default PoseNet, video mode), as `arrays`."""
    from piposer import config
    from piposer.estimators import create
    from piposer.sources import SourceSettings, open_source

    source = open_source(SourceSettings(source=str(SHARED / "data/video/street_multi.avi")), log=lambda _: None)
    frames = []
    with create(config.Config(), running_mode="video") as estimator:
        while (frame := source.read()) is not None:
            frames.append([arrays(p) for p in estimator.estimate(frame)])
    source.close()
    return frames


def walking(base: tuple, people: int, frames: int) -> list[list[tuple]]:
    """`people` copies of the pose `base` (as `arrays`) spread over a 1920x1080 frame, each walking its own
    way with a little jitter, as `arrays` per frame."""
    xy, scores, size, threshold, score = base
    rng = np.random.default_rng(0)
    starts, walks = rng.uniform(-600, 600, (people, 2)), rng.uniform(-4, 4, (people, 2))
    return [[(w, scores, size, threshold, score) for w in xy + (starts + i * walks)[:, None]
             + rng.normal(0, 1.5, (people, len(xy), 2))] for i in range(frames)]


def compare(packages: list[str], scene: list[list[tuple]], fps: float, crowd: int = 0,
            rounds: int = 2) -> dict[tuple[str, bool], float]:
    """Median ms per frame for each (package, smoothing) over the frames of `scene` with at least `crowd` poses
    (all but the first 10 when `crowd` is 0). Each side runs the whole scene in turn, `rounds` times in
    alternating order (frame-by-frame turns would have each side's tracker evict the other's from the cache)."""
    runs = [(package, smooth) for package in packages for smooth in (False, True)]
    times: dict[tuple[str, bool], list[float]] = {key: [] for key in runs}
    for r in range(rounds):
        for package, smooth in runs if r % 2 == 0 else runs[::-1]:
            tracking = importlib.import_module(f"{package}.tracking.tracker")  # not the lazy package: its
            # re-exports once named piposer's modules, so an older side imported this checkout's tracker
            types = importlib.import_module(f"{package}.types")
            tracker = tracking.Tracker(tracking.TrackingSettings(smooth=smooth))
            for i, arrays in enumerate(scene):
                poses = [types.make_pose(types.COCO17, xy, scores, size, threshold, score)
                         for xy, scores, size, threshold, score in arrays]
                start = time.thread_time()
                tracker.update(poses, i / fps, min_score=0.3)
                if (len(arrays) >= crowd) if crowd else i >= 10:
                    times[package, smooth].append(time.thread_time() - start)
    return {key: float(np.median(t)) * 1e3 for key, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--against", metavar="REV", help="a git revision to run side by side (default: none)")
    args = parser.parse_args()
    scenes = {f"walking, {args.people} people, {args.frames} frames": (walking(real_pose(), args.people, args.frames), 30.0, 0),
              "street_multi.avi, frames with 10+ poses": (street_poses(), 50.0, 10)}
    with sides(args.against) as packages:
        results = {name: compare(packages, *scene) for name, scene in scenes.items()}
    print("median CPU ms per frame" + (f"; {OLD} = {args.against}" if args.against else ""))
    print("| scene | code | tracking only | with smoothing |\n|---|---|---|---|")
    for name, result in results.items():
        for package in packages:
            print(f"| {name} | {package} | {result[package, False]:.3f} | {result[package, True]:.3f} |")


if __name__ == "__main__":
    main()
