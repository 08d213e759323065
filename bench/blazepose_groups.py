"""BlazePose for groups (issue 19): its own detector against PoseNet / MoveNet proposals, side by side in one run.

    PYTHONPATH=. .venv/bin/python bench/blazepose_groups.py [--repeat 15]

Accuracy on coco_dev and pose_extra: COCO AP, AP_M, AP_L, and people found (labelled people some pose
matches with OKS >= 0.5). Agreement on the photos with one labelled person: OKS of each mode's pose (num_poses=1)
against the ground truth, and the median landmark distance between top-down and BlazePose's own pose over the
diagonal of the latter's box. Cost: median ms per frame on each set's most crowded photo with num_poses 1, 3
and 6, single photos ("image") and the same photo as a tracked stream ("video", proposer every detect_every
frames); the modes take turns round by round, so load from other processes hits all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")).resolve()
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join(str(SHARED / d) for d in ("models", "models/converted_from_tfjs")))

from piposer import config  # noqa: E402
from piposer.estimators import create  # noqa: E402
from piposer.estimators.blazepose import to_coco17  # noqa: E402
from piposer.sources import read_frame  # noqa: E402
from piposer.tools.evaluate import coco_eval, oks, predict  # noqa: E402
from piposer.types import Frame  # noqa: E402

DATA = SHARED / "data"
SETS = {name: DATA / name / "person_keypoints.json" for name in ("coco_dev", "pose_extra")}
DETECTORS = ("blazepose", "posenet", "movenet")


def estimator(person_detector: str, num_poses: int, running_mode: str = "image"):
    cfg = config.Config()
    cfg.model.name = "blazepose-full"
    cfg.blazepose = dataclasses.replace(cfg.blazepose, person_detector=person_detector, num_poses=num_poses)
    return create(cfg, running_mode=running_mode)


def people(meta: dict, image_id: int) -> list[dict]:
    return [a for a in meta["annotations"] if a["image_id"] == image_id and a.get("num_keypoints", 0) > 0
            and not a.get("iscrowd")]


def best_oks(person: dict, results: list[dict]) -> float:
    truth = np.array(person["keypoints"], dtype=np.float64).reshape(-1, 3)
    return max((oks(np.array(r["keypoints"]).reshape(-1, 3)[:, :2], truth, person["area"])
                for r in results if r["image_id"] == person["image_id"]), default=0.0)


def accuracy() -> None:
    print("| set | person_detector | AP | AP_M | AP_L | people found | poses |\n|---|---|---|---|---|---|---|")
    for name, path in SETS.items():
        meta = json.loads(path.read_text())
        labelled = [p for im in meta["images"] for p in people(meta, im["id"])]
        for detector in DETECTORS:
            results = predict(estimator(detector, 10), path, to_coco17)
            stats = coco_eval(path, results)
            found = sum(best_oks(p, results) >= 0.5 for p in labelled)
            print(f"| {name} | {detector} | {stats['AP']:.3f} | {stats['APm']:.3f} | {stats['APl']:.3f} | "
                  f"{found} / {len(labelled)} | {len(results)} |")


def agreement() -> None:
    """One-person photos: each mode's OKS against the truth, and how far top-down lands from BlazePose's own pose."""
    singles = {detector: estimator(detector, 1) for detector in DETECTORS}
    scores = {detector: [] for detector in DETECTORS}
    distances = {detector: [] for detector in DETECTORS[1:]}
    for path in SETS.values():
        meta = json.loads(path.read_text())
        for im in meta["images"]:
            (person, *more) = people(meta, im["id"]) or [None]
            if person is None or more:
                continue
            frame = read_frame(path.parent / "images" / im["file_name"])
            poses = {d: est.estimate(frame) for d, est in singles.items()}
            for detector, found in poses.items():
                results = [{"image_id": im["id"], "keypoints": np.column_stack([to_coco17(p).xy(), np.ones(17)]).ravel()}
                           for p in found]
                scores[detector].append(best_oks(person, results))
            if poses["blazepose"]:
                own = poses["blazepose"][0].xy()
                diagonal = np.linalg.norm(np.ptp(own, axis=0))
                for detector in distances:
                    if poses[detector]:
                        distances[detector].append(np.median(np.linalg.norm(poses[detector][0].xy() - own, axis=1)) / diagonal)
                    else:
                        distances[detector].append(np.inf)
    print(f"\nOne-person photos ({len(scores['blazepose'])}), num_poses=1: OKS against the truth (0 = not found)")
    print("| person_detector | mean OKS | median OKS | found (OKS >= 0.5) | median landmark distance to blazepose's pose / box diagonal |")
    print("|---|---|---|---|---|")
    for detector, values in scores.items():
        gap = "-" if detector == "blazepose" else \
            f"{statistics.median(distances[detector]):.4f} (max {max(distances[detector]):.3f})"
        print(f"| {detector} | {np.mean(values):.3f} | {np.median(values):.3f} | "
              f"{sum(v >= 0.5 for v in values)} | {gap} |")


def cost(repeat: int, path: Path) -> None:
    """Median ms per frame on the photo of `path`'s set with the most people, for num_poses 1, 3 and 6, every
    mode taking its turn each round."""
    meta = json.loads(path.read_text())
    crowd = max(meta["images"], key=lambda im: len(people(meta, im["id"])))
    image = read_frame(path.parent / "images" / crowd["file_name"]).image
    setups = {(d, n, m): estimator(d, n, m) for d in DETECTORS for n in (1, 3, 6) for m in ("image", "video")}
    seconds = {key: [] for key in setups}
    counts = {key: [] for key in setups}
    for i in range(repeat + 1):
        for key, est in setups.items():
            start = time.perf_counter()
            poses = est.estimate(Frame(image, i, i / 30))
            if i:  # the first round warms up (and starts the tracks)
                seconds[key].append(time.perf_counter() - start)
                counts[key].append(len(poses))
    print(f"\nCost on {crowd['file_name']} ({len(people(meta, crowd['id']))} people, {image.shape[1]}x{image.shape[0]}), median ms per frame over {repeat} "
          "rounds (people found in brackets)")
    print("| person_detector | mode | 1 | 3 | 6 | ms per extra person |\n|---|---|---|---|---|---|")
    for detector in DETECTORS:
        for mode in ("image", "video"):
            ms = [statistics.median(seconds[(detector, n, mode)]) * 1e3 for n in (1, 3, 6)]
            found = [statistics.median(counts[(detector, n, mode)]) for n in (1, 3, 6)]
            slope = (ms[2] - ms[0]) / max(found[2] - found[0], 1)
            print(f"| {detector} | {mode} | " + " | ".join(f"{t:.1f} ({c:g})" for t, c in zip(ms, found))
                  + f" | {slope:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds for the cost table")
    args = parser.parse_args()
    accuracy()
    agreement()
    for path in SETS.values():
        cost(args.repeat, path)


if __name__ == "__main__":
    main()
