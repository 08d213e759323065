"""The tracker on the real videos in ../shared/data/video, at full and reduced frame rates, and its cost.

Runs the tracker as the loop does (all of the estimator's poses in, `--min-score` to publish) and
reports distinct public ids, ids lasting at least 1 s, the median track length, and *jumps* (a track
whose box centre moves more than half its box diagonal between processed frames: an id handed from
one person to another far away). The clips have no identity ground truth: swaps between people close
together are counted by eye on `piposer video`'s annotated output (BENCHMARKS.md says which).
Then: the tracker's CPU time per frame for 10 people, and how far smoothing trails a walking person.

    .venv/bin/python bench/tracking_ids.py [--step 1 3] [--model posenet]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED / 'models'}:{SHARED / 'models' / 'converted_from_tfjs'}")

from piposer import config as piposer_config  # noqa: E402
from piposer.estimators import create  # noqa: E402
from piposer.sources import SourceSettings, open_source  # noqa: E402
from piposer.tracking import Tracker, TrackingSettings  # noqa: E402
from piposer.types import Pose, make_pose  # noqa: E402
from tracker_cost import arrays, compare, walking  # noqa: E402

VIDEOS = ("room_single.avi", "room_pair.mp4", "street_multi.avi")


def detect(estimator, video: Path) -> tuple[list[list], float]:
    """All poses of every frame of `video`, and its frame rate."""
    import cv2

    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 30.0
    source = open_source(SourceSettings(source=str(video)), log=lambda _: None)
    frames = []
    while (frame := source.read()) is not None:
        frames.append(estimator.estimate(frame))
    source.close()
    return frames, fps


def measure(frames: list[list], fps: float, step: int, min_score: float, settings: TrackingSettings) -> dict:
    """Run the tracker as the loop does (all poses in, `min_score` to publish) over every `step`th frame; also
    its median CPU time (ms) on the frames where the model gave 10 or more poses."""
    import time

    tracker = Tracker(settings)
    crowded = []
    lifetimes: Counter[int] = Counter()
    last_centre: dict[int, tuple[np.ndarray, float]] = {}
    jumps = people_max = processed = 0
    for i in range(0, len(frames), step):
        given = [moved(p, p.xy()) for p in frames[i]]  # fresh poses, as the estimator hands the loop each frame
        start = time.thread_time()
        poses = tracker.update(given, i / fps, min_score=min_score)
        if len(given) >= 10:
            crowded.append(time.thread_time() - start)
        lifetimes.update(p.track_id for p in poses)
        people_max = max(people_max, len(poses))
        for p in poses:
            centre = np.array([(p.box.x0 + p.box.x1) / 2, (p.box.y0 + p.box.y1) / 2])
            diagonal = float(np.hypot(p.box.width, p.box.height))
            if p.track_id in last_centre:
                previous, previous_diagonal = last_centre[p.track_id]
                if np.linalg.norm(centre - previous) > 0.5 * max(diagonal, previous_diagonal):
                    jumps += 1
            last_centre[p.track_id] = (centre, diagonal)
        processed += 1
    lengths = sorted(lifetimes.values())
    return {
        "frames": processed,
        "people_max": people_max,
        "ids": len(lifetimes),
        "long_ids": sum(n * step >= fps for n in lengths),
        "median_s": float(np.median(lengths)) * step / fps if lengths else 0.0,
        "jumps": jumps,
        "crowded_ms": float(np.median(crowded)) * 1e3 if crowded else None,
    }


def moved(base: Pose, xy: np.ndarray) -> Pose:
    """A copy of the pose `base` with its keypoints at (K, 2) `xy`, made as an estimator makes poses."""
    _, scores, size, threshold, score = arrays(base)
    return make_pose(base.layout, xy, scores, size, threshold, score)


def cost(frames: list[list], people: int = 10, rounds: int = 300) -> dict[str, float]:
    """Median tracker CPU time per frame (ms) for `people` copies of a real pose (the first of `frames`)
    walking about, with and without smoothing (bench/tracker_cost.py's walking scene)."""
    base = next(p for f in frames for p in f)
    ms = compare(["piposer"], walking(arrays(base), people, rounds), 30.0)
    return {"tracking only": ms["piposer", False], "with smoothing": ms["piposer", True]}


def smoothing_lag(frames: list[list], speeds=(100.0, 300.0, 1000.0), fps: float = 30.0) -> dict[float, float]:
    """How far behind (ms) the smoothed keypoints trail a person walking steadily at each speed (px/s)."""
    base = next(p for f in frames for p in f)
    seen = base.detected()
    result = {}
    for speed in speeds:
        tracker, behind = Tracker(), []
        for i in range(90):
            true = base.xy() + (speed * i / fps, 0.0)
            (out,) = tracker.update([moved(base, true)], i / fps)
            behind.append(np.mean(true[seen, 0] - out.xy()[seen, 0]))
        result[speed] = float(np.median(behind[30:])) / speed * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="posenet")
    parser.add_argument("--step", type=int, nargs="+", default=[1, 3], help="process every Nth frame (emulates a slower Pi)")
    parser.add_argument("--min-score", type=float, default=0.3)
    parser.add_argument("--max-age", type=float, default=TrackingSettings.max_age)
    parser.add_argument("--min-similarity", type=float, default=TrackingSettings.min_similarity)
    args = parser.parse_args()
    settings = TrackingSettings(max_age=args.max_age, min_similarity=args.min_similarity)
    cfg = piposer_config.Config()
    cfg.model.name = args.model
    estimator = create(cfg, running_mode="video")
    print(f"model {estimator.model_name}, min pose score {args.min_score}, tracking max_age {settings.max_age} s, "
          f"min_similarity {settings.min_similarity}")
    print("| video | step | effective fps | frames | max people | ids | ids lasting >= 1 s | median track s | jumps |")
    print("|---|---|---|---|---|---|---|---|---|")
    crowded = []
    for name in VIDEOS:
        frames, fps = detect(estimator, SHARED / "data" / "video" / name)
        for step in args.step:
            r = measure(frames, fps, step, args.min_score, settings)
            print(f"| {name} | {step} | {fps / step:.1f} | {r['frames']} | {r['people_max']} | {r['ids']} | "
                  f"{r['long_ids']} | {r['median_s']:.2f} | {r['jumps']} |")
            if r["crowded_ms"] is not None:
                crowded.append(f"{name} every {step}: {r['crowded_ms']:.3f} ms")
        if name == "room_single.avi":
            single = frames
    print("tracker with smoothing on the real poses of frames where the model gave 10 or more (median CPU): "
          + "; ".join(crowded))
    for what, ms in cost(single).items():
        print(f"tracker, 10 people, {what}: {ms:.3f} ms CPU per frame (median of 2 runs x 290 frames)")
    body = next(p for f in single for p in f).box.height
    for speed, ms in smoothing_lag(single).items():
        print(f"smoothing lag, person {body:.0f} px tall walking {speed:.0f} px/s at 30 fps: {ms:.1f} ms")


if __name__ == "__main__":
    main()
