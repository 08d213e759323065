"""Where and why piposer's hand tracking and MediaPipe's part ways on the panned photos (video mode).

    .venv/bin/python bench/hands_divergence.py [--complexity lite] [--frames 120]
    .venv/bin/python bench/hands_divergence.py --reference > tests/data/hands_mediapipe.json

MediaPipe (mediapipe==0.10.14 in the bench venv, its legacy hands graph with the ROI streams it keeps
internal in `solutions.hands` also exposed) runs once over the frames and reports, per frame, each hand's
landmarks, the palm ROIs where its palm detector ran and the ROI each hand hands on to the next frame.
Then piposer runs three ways over the same frames:
*closed loop*, as it runs for users; *open loop*, its landmark model on MediaPipe's own ROIs of every
frame (MediaPipe's association of palm and followed ROIs redone on MediaPipe's numbers), which isolates
the crop and the model from the tracking; and *nudged*, closed loop again with every palm ROI moved by
`--nudge` pixels, against the closed loop itself: how far two equally right trackers drift apart.
Printed: agreement (median and p95 landmark distance over the hand box diagonal, as in
bench/hands_vs_mediapipe.py) of each, and the first frames where the closed loop is over 2 % off with
both sides' ROIs. `--reference` prints the pinned MediaPipe numbers tests/test_hands_mediapipe.py uses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blazepose_vs_mediapipe import SHARED, ensure_bench_venv, frames  # noqa: E402
from hands_vs_mediapipe import COMPLEXITY, MIRRORED, agreement, panned  # noqa: E402

REFERENCE_PHOTO = "pose_extra/images/crowdpose_106848.jpg"
OFF = 0.02  # a frame is "off" when some landmark is this far (hand box diagonals) from MediaPipe's


def worker(source: str, complexity: str) -> None:
    """Inside the bench venv: MediaPipe's hands graph with its ROI streams, one JSON line per frame."""
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import hands

    graph = SolutionBase(
        binary_graph_path=hands._BINARYPB_FILE_PATH,
        side_inputs={"model_complexity": COMPLEXITY[complexity], "num_hands": 2, "use_prev_landmarks": True},
        calculator_params={"palmdetectioncpu__TensorsToDetectionsCalculator.min_score_thresh": 0.5,
                           "handlandmarkcpu__ThresholdingCalculator.threshold": 0.5},
        outputs=["multi_hand_landmarks", "multi_handedness", "hand_rects_from_landmarks",
                 "hand_rects_from_palm_detections"])
    for image in frames(source, 10 ** 6):
        h, w = image.shape[:2]
        result = graph.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        rect = lambda r: [r.x_center * w, r.y_center * h, r.width * w, r.rotation]  # noqa: E731  (square in pixels)
        palms = result.hand_rects_from_palm_detections
        print(json.dumps({
            "hands": [[[p.x * w, p.y * h] for p in lm.landmark] for lm in result.multi_hand_landmarks or []],
            "labels": [MIRRORED[c.classification[0].label] for c in result.multi_handedness or []],
            "palm_rois": None if palms is None else [rect(r) for r in palms],
            "next_rois": [rect(r) for r in result.hand_rects_from_landmarks or []]}), flush=True)


def mediapipe_run(source: str, complexity: str) -> list[dict]:
    answer = subprocess.run([str(ensure_bench_venv()), __file__, "--worker", source, complexity],
                            check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in answer.splitlines()]


def as_hands(results: list[dict]) -> list[list[dict]]:
    return [[{"xy": xy, "hand": label} for xy, label in zip(r["hands"], r["labels"])] for r in results]


def piposer_run(source: str, complexity: str, nudge: float = 0.0) -> list[dict]:
    """piposer's closed loop, every palm ROI moved right by `nudge` pixels."""
    from piposer.estimators import HandsSettings, ModelSettings
    from piposer.estimators.hands import HandsEstimator
    from piposer.types import Frame

    estimator = HandsEstimator(ModelSettings(name=f"hands-{complexity}", num_threads=1),
                               HandsSettings(running_mode="video"))
    detect = estimator.detector.detect
    estimator.detector.detect = lambda *a: [dataclasses.replace(r, cx=r.cx + nudge) for r in detect(*a)]
    results = []
    for i, image in enumerate(frames(source, 10 ** 6)):
        poses = estimator.estimate(Frame(image, i, i / 30))
        results.append({"hands": [p.xy().tolist() for p in poses], "labels": [p.handedness for p in poses],
                        "next_rois": [[r.cx, r.cy, r.size, r.rotation] for r in estimator.rois]})
    return results


def open_loop(source: str, complexity: str, theirs: list[dict]) -> list[dict]:
    """piposer's landmark model on the ROIs MediaPipe looked at in each frame."""
    from piposer.estimators import HandsSettings, ModelSettings
    from piposer.estimators.hands import HandsEstimator, associate
    from piposer.estimators.roi import Roi
    from piposer.estimators.stages import Stopwatch

    estimator = HandsEstimator(ModelSettings(name=f"hands-{complexity}", num_threads=1),
                               HandsSettings(running_mode="video"))
    results = []
    for i, image in enumerate(frames(source, 10 ** 6)):
        followed = theirs[i - 1]["next_rois"] if i else []
        rois = associate([Roi(*r) for r in (theirs[i]["palm_rois"] or []) + followed])
        hands = [estimator.landmarker.landmarks(image, roi, False, Stopwatch()) for roi in rois]
        hands = [h for h in hands if h.presence >= 0.5]
        results.append({"hands": [h.xyz[:, :2].tolist() for h in hands],
                        "labels": ["right" if h.right >= 0.5 else "left" for h in hands]})
    return results


def worst(ours: dict, theirs: dict) -> float:
    """The largest landmark distance of a frame's hands from MediaPipe's nearest hand, in hand box diagonals."""
    if len(ours["hands"]) != len(theirs["hands"]):
        return float("inf")
    off = 0.0
    for a in map(np.asarray, ours["hands"]):
        b = min(map(np.asarray, theirs["hands"]), key=lambda b: np.linalg.norm(a - b, axis=1).mean())
        off = max(off, np.linalg.norm(a - b, axis=1).max() / np.linalg.norm(np.ptp(b, axis=0)))
    return off


def rois(values: list) -> str:
    return " ".join(f"({r[0]:.2f}, {r[1]:.2f}, side {r[2]:.2f}, rot {r[3]:.4f})" for r in values)


def reference() -> None:
    """MediaPipe's numbers on the reference photo shown twice, lite model, rounded (tests/data/hands_mediapipe.json)."""
    source = Path("/tmp/piposer_hands_reference.txt")
    source.write_text(f"{SHARED / 'data' / REFERENCE_PHOTO}\n" * 2)
    r4 = lambda values: [[round(v, 4) for v in r] for r in values]  # noqa: E731
    run = [{"palm_rois": None if f["palm_rois"] is None else r4(f["palm_rois"]),
            "hands": [r4(h) for h in f["hands"]], "next_rois": r4(f["next_rois"])}
           for f in mediapipe_run(str(source), "lite")]
    print(json.dumps({"about": "MediaPipe 0.10.14 legacy solutions.hands graph (model_complexity=0, max_num_hands=2, "
                      "confidences 0.5, video mode) on the photo given twice: per frame the palm ROIs (null where "
                      "the palm detector did not run), each hand's 21 landmarks and the ROI it gives the next "
                      "frame, in image pixels: ROIs as centre x, centre y, side, rotation (radians). Made by "
                      "bench/hands_divergence.py --reference.", "photo": REFERENCE_PHOTO, "hands-lite": run},
                     separators=(",", ":")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--complexity", nargs="+", default=["lite", "full"], choices=list(COMPLEXITY))
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--nudge", type=float, default=1e-4, help="pixels the nudged run moves every palm ROI by")
    parser.add_argument("--reference", action="store_true", help="print the test's MediaPipe reference and stop")
    args = parser.parse_args()
    if args.reference:
        return reference()
    source = panned(args.frames)
    for complexity in args.complexity:
        theirs = mediapipe_run(source, complexity)
        ours = piposer_run(source, complexity)
        runs = {"closed loop against MediaPipe": (ours, theirs),
                "open loop (MediaPipe's ROIs) against MediaPipe": (open_loop(source, complexity, theirs), theirs),
                f"closed loop, palm ROIs nudged {args.nudge} px, against MediaPipe": (
                    nudged := piposer_run(source, complexity, args.nudge), theirs),
                "closed loop nudged against closed loop": (nudged, ours)}
        print(f"\nhands-{complexity}, {len(theirs)} panned frames\n\n| run | hands paired | only one side | median | p95 |")
        print("|---|---|---|---|---|")
        for name, (a, b) in runs.items():
            r = agreement(as_hands(a), as_hands(b))
            print(f"| {name} | {r['pairs']} | {r['unpaired']} | {100 * r['median']:.3f}% | {100 * r['p95']:.3f}% |")
        off = [i for i in range(len(ours)) if worst(ours[i], theirs[i]) > OFF]
        print(f"\nframes over {100 * OFF:.0f} % off: {len(off)}; the first ones, with the ROIs each side looked at:")
        for i in off[:3]:
            looked = theirs[i - 1]["next_rois"] if i else []
            print(f"  frame {i}: {100 * worst(ours[i], theirs[i]):.2f} % off; MediaPipe's ROIs {rois(looked)}; "
                  f"piposer's {rois(ours[i - 1]['next_rois'] if i else [])}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(*sys.argv[2:4])
    else:
        main()
