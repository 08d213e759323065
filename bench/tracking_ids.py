"""ID stability of the OKS tracker on the real videos in ../shared/data/video, at full and reduced frame rates.

The clips have no identity ground truth, so switches are counted two ways that need none:
- new ids: ids born after the first frame, beyond the people count (room clips keep the same people
  in view throughout, so every one of these is a fragmentation or a switch);
- short ids: ids that live fewer than 5 processed frames (flickering weak detections, not people);
- jumps: a track whose box centre moves more than half its box diagonal between consecutive
  processed frames (an id handed from one person to another).
Only poses with score >= --min-score count (weak detections flicker in and out by nature).

    .venv/bin/python bench/tracking_ids.py [--step 1 2 3] [--model posenet]
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

from piposer.estimators import ModelSettings  # noqa: E402
from piposer.estimators.posenet import PoseNetEstimator  # noqa: E402
from piposer.sources import SourceSettings, open_source  # noqa: E402
from piposer.tracking import Tracker, TrackingSettings  # noqa: E402

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
    tracker = Tracker(settings)
    first_ids: set[int] = set()
    lifetimes: Counter[int] = Counter()
    last_centre: dict[int, tuple[np.ndarray, float]] = {}
    jumps = people_max = processed = 0
    for i in range(0, len(frames), step):
        poses = [p for p in frames[i] if p.score >= min_score]
        for p in poses:
            p.track_id = None
        tracker.update(poses, i / fps)
        ids = {p.track_id for p in poses}
        if processed == 0:
            first_ids = set(ids)
        lifetimes.update(ids)
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
    return {
        "frames": processed,
        "people_max": people_max,
        "ids": len(lifetimes),
        "new_ids": len(lifetimes) - max(len(first_ids), people_max),
        "short_ids": sum(1 for n in lifetimes.values() if n < 5),
        "jumps": jumps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="posenet")
    parser.add_argument("--step", type=int, nargs="+", default=[1, 3], help="process every Nth frame (emulates a slower Pi)")
    parser.add_argument("--min-score", type=float, default=0.3)
    parser.add_argument("--max-age", type=float, default=TrackingSettings.max_age)
    parser.add_argument("--min-similarity", type=float, default=TrackingSettings.min_similarity)
    args = parser.parse_args()
    settings = TrackingSettings(max_age=args.max_age, min_similarity=args.min_similarity)
    estimator = PoseNetEstimator(ModelSettings(name=args.model))
    print(f"model {estimator.model_name}, min pose score {args.min_score}, tracking max_age {settings.max_age} s, "
          f"min_similarity {settings.min_similarity}")
    print("| video | step | effective fps | frames | max people | ids | new ids | short ids | jumps |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in VIDEOS:
        frames, fps = detect(estimator, SHARED / "data" / "video" / name)
        for step in args.step:
            r = measure(frames, fps, step, args.min_score, settings)
            print(f"| {name} | {step} | {fps / step:.1f} | {r['frames']} | {r['people_max']} | {r['ids']} | "
                  f"{r['new_ids']} | {r['short_ids']} | {r['jumps']} |")


if __name__ == "__main__":
    main()
