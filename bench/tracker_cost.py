"""The tracker's CPU time per frame for 10 walking people, with and without keypoint smoothing, for this checkout
and an older revision side by side in one process, taking turns frame by frame.

    python bench/tracker_cost.py [--against REV] [--people 10] [--frames 300]

The people are a real pose (PoseNet's on the first frame of room_single.avi) copied and spread over the
1920x1080 frame, each walking its own way with a little jitter, made into poses by each side's own
`make_pose` as its estimators would. Times are the thread's CPU time, medians after the first 10 frames.
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


def real_pose():
    """PoseNet's pose on the first frame of room_single.avi, as arrays: (K, 2) xy, (K,) scores, threshold, size, score."""
    import cv2

    from piposer import PoseNet

    ok, image = cv2.VideoCapture(str(SHARED / "data/video/room_single.avi")).read()
    with PoseNet() as net:
        (pose,) = net.estimate(image)[:1]
    threshold = min(k.score for k in pose.keypoints if k.detected)
    return pose.xy(), pose.scores(), threshold, pose.image_size, pose.score


def compare(packages: list[str], people: int, frames: int) -> dict[tuple[str, bool], float]:
    """Median ms per frame for each (package, smoothing)."""
    xy, scores, threshold, size, score = real_pose()
    rng = np.random.default_rng(0)
    starts, walks = rng.uniform(-600, 600, (people, 2)), rng.uniform(-4, 4, (people, 2))
    sides = {}
    for package in packages:
        tracking = importlib.import_module(f"{package}.tracking")
        types = importlib.import_module(f"{package}.types")
        for smooth in (False, True):
            tracker = tracking.Tracker(tracking.TrackingSettings(smooth=smooth))
            sides[package, smooth] = tracker, types.make_pose, types.COCO17, []
    for i in range(frames):
        walked = xy + (starts + i * walks)[:, None] + rng.normal(0, 1.5, (people, len(xy), 2))
        for key in list(sides) if i % 2 else list(sides)[::-1]:
            tracker, make_pose, layout, times = sides[key]
            poses = [make_pose(layout, w, scores, size, threshold, score) for w in walked]
            start = time.thread_time()
            tracker.update(poses, i / 30.0, min_score=0.3)
            times.append(time.thread_time() - start)
    return {key: float(np.median(side[3][10:])) * 1e3 for key, side in sides.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=10)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--against", metavar="REV", help="a git revision to run side by side (default: none)")
    args = parser.parse_args()
    with sides(args.against) as packages:
        result = compare(packages, args.people, args.frames)
    print(f"{args.people} people, {args.frames} frames, median CPU ms per frame"
          + (f"; {OLD} = {args.against}" if args.against else ""))
    print("| code | tracking only | with smoothing |\n|---|---|---|")
    for package in packages:
        print(f"| {package} | {result[package, False]:.3f} | {result[package, True]:.3f} |")


if __name__ == "__main__":
    main()
