"""PoseNet speed on this machine: interpreter, decode and whole-frame medians on the coco_dev photos.

Every image is run `--repeat` times, interleaved, so the figures are measured side by side.
Also times the plain-Python reference decoder (tests/posenet_reference.py) on the same tensors.
Usage: python bench/posenet_bench.py [--model posenet] [--threads 2] [--repeat 20]
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

from piposer.estimators import ModelSettings  # noqa: E402
from piposer.estimators.posenet import PoseNetEstimator, PoseNetSettings  # noqa: E402
from piposer.estimators.posenet_decoder import decode_multiple, sigmoid  # noqa: E402
from piposer.types import Frame  # noqa: E402
from posenet_reference import decode_multiple_reference  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="posenet")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    data = SHARED / "data" / "coco_dev"
    images = [cv2.imread(str(data / "images" / im["file_name"]))
              for im in json.loads((data / "person_keypoints.json").read_text())["images"]]
    settings = PoseNetSettings(score_threshold=0.15, max_poses=10)
    est = PoseNetEstimator(ModelSettings(name=args.model, num_threads=args.threads), settings)
    for img in images:  # warm up every input size once
        est.estimate(Frame(img, 0, 0.0))

    invoke, decode, total, preprocess, reference = [], [], [], [], []
    for rep in range(args.repeat):
        for img in images:
            t0 = time.perf_counter()
            est.estimate(Frame(img, 0, 0.0))
            total.append(time.perf_counter() - t0)
            invoke.append(est.timings["invoke"])
            decode.append(est.timings["decode"])
            preprocess.append(est.timings["preprocess"])
            if rep < 2:
                heads, _ = est.infer(img)
                t0 = time.perf_counter()
                decode_multiple_reference(sigmoid(heads["heatmap"]), heads["offsets"], heads["fwd"], heads["bwd"],
                                          est.stride, settings.score_threshold, settings.nms_radius, settings.max_poses)
                reference.append(time.perf_counter() - t0)

    ms = lambda xs: statistics.median(xs) * 1e3  # noqa: E731
    print(f"model {est.model_name}, {args.threads} threads, {len(images)} coco_dev images x {args.repeat}, "
          f"multi-pose, score_threshold {settings.score_threshold}, max_poses {settings.max_poses}")
    print(f"median invoke      {ms(invoke):7.2f} ms")
    print(f"median preprocess  {ms(preprocess):7.2f} ms")
    print(f"median decode      {ms(decode):7.3f} ms   (plain-Python reference decoder: {ms(reference):.2f} ms)")
    print(f"median total/frame {ms(total):7.2f} ms")
    print(f"ratio total/invoke {statistics.median(total) / statistics.median(invoke):7.3f}")


if __name__ == "__main__":
    main()
