"""People found per frame, and time per frame, on the shared videos: PoseNet settings side by side in one process.

Every setting sees every frame in turn (so motion-based second passes have their video), its own estimator
each; people are counted at pose score >= `--cut` (the loop's default min_pose_score) on every `--every`-th
frame, and the time is the median whole `estimate` over those frames.
Usage: python bench/small_people.py [--video street_multi.avi] [--every 5] [--setting NAME:key=value,...]
(settings as `piposer eval --model` takes them: TOML values, so strings quoted)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's piposer, not an installed one
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED}/models{os.pathsep}{SHARED}/models/converted_from_tfjs")

from piposer import config  # noqa: E402
from piposer.estimators import create  # noqa: E402
from piposer.modelstore import ModelStore  # noqa: E402
from piposer.tools.cli import eval_spec  # noqa: E402

DEFAULT_SETTINGS = ['posenet:second_pass="off"', 'posenet:second_pass="off",long_side=481',
                    'posenet:second_pass="off",long_side=641', 'posenet:running_mode="image"', "posenet",
                    'posenet:second_pass="motion"']


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--video", action="append", help="file under $PIPOSER_SHARED/data/video (repeatable)")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--cut", type=float, default=0.3)
    ap.add_argument("--setting", action="append", help=f"estimator NAME:key=value,... (default {DEFAULT_SETTINGS})")
    args = ap.parse_args()
    settings = args.setting or DEFAULT_SETTINGS
    for video in args.video or ["street_multi.avi"]:
        store = ModelStore.from_environment()
        estimators = [create(eval_spec(spec, config.Config(), store), store=store) for spec in settings]
        counts = [[] for _ in settings]
        times = [[] for _ in settings]
        crops = [[] for _ in settings]
        cap = cv2.VideoCapture(str(SHARED / "data" / "video" / video))
        index = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            for i, est in enumerate(estimators):
                t0 = time.perf_counter()
                poses = est.estimate(image)
                elapsed = time.perf_counter() - t0
                if index % args.every == 0:
                    counts[i].append(sum(p.score >= args.cut for p in poses))
                    times[i].append(elapsed)
                    crops[i].append(len(est.second_pass.crops) if est.second_pass else 0)
            index += 1
        print(f"{video}: {index} frames, counted every {args.every}th ({len(counts[0])}), score >= {args.cut}")
        print(f"{'setting':55s} {'people/frame':>12s} {'median ms':>10s} {'crops/frame':>11s}")
        for setting, c, t, k in zip(settings, counts, times, crops):
            print(f"{setting:55s} {statistics.mean(c):12.2f} {1000 * statistics.median(t):10.1f} {statistics.mean(k):11.2f}")


if __name__ == "__main__":
    main()
