"""PoseNet speed on this machine: interpreter, preprocessing, decode and whole-frame medians on the coco_dev photos.

Stage times come from `piposer.tools.benchmark.time_estimator` (each image `--repeat` times in a row, as a
camera stream would run). The decoder is also timed against the plain-Python reference decoder
(tests/posenet_reference.py) on the same tensors, interleaved, so the ratio is side by side.
Usage: python bench/posenet_bench.py [--model posenet] [--threads N] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED}/models{os.pathsep}{SHARED}/models/converted_from_tfjs")

from piposer.tools.benchmark import print_report, time_estimator  # noqa: E402
from piposer.estimators import ModelSettings  # noqa: E402
from piposer.estimators.posenet import PoseNetEstimator, PoseNetSettings, heatmap_scores  # noqa: E402
from piposer.estimators.posenet_decoder import decode_multiple  # noqa: E402
from posenet_reference import decode_multiple_reference  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="posenet")
    ap.add_argument("--threads", type=int, default=ModelSettings().num_threads)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    data = SHARED / "data" / "coco_dev"
    paths = [data / "images" / im["file_name"] for im in json.loads((data / "person_keypoints.json").read_text())["images"]]
    settings = PoseNetSettings(score_threshold=0.15, max_poses=10)
    est = PoseNetEstimator(ModelSettings(name=args.model, num_threads=args.threads), settings)
    print(f"{args.threads} threads; multi-pose, score_threshold {settings.score_threshold}, max_poses {settings.max_poses}")
    print_report(est, time_estimator(est, paths, args.repeat), len(paths), args.repeat)

    ours, reference, poses = [], [], []
    for path in paths:
        heads, _ = est.infer(cv2.imread(str(path)))
        tensors = (heatmap_scores(heads["heatmap"]), heads["offsets"], heads["fwd"], heads["bwd"], est.stride,
                   settings.score_threshold, settings.nms_radius, settings.max_poses)
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            poses.append(len(decode_multiple(*tensors).scores))
            t1 = time.perf_counter()
            decode_multiple_reference(*tensors)
            t2 = time.perf_counter()
            ours.append(t1 - t0)
            reference.append(t2 - t1)
    print(f"decoder on the same tensors ({statistics.mean(poses):.1f} poses per image on average):")
    print(f"  vectorized   {statistics.median(ours) * 1e3:8.3f} ms")
    print(f"  reference    {statistics.median(reference) * 1e3:8.3f} ms  (plain Python, same algorithm)")
    print(f"  speed-up     {statistics.median(reference) / statistics.median(ours):8.1f}x")


if __name__ == "__main__":
    main()
