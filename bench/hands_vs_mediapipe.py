"""piposer's Hands against MediaPipe itself (mediapipe==0.10.14, legacy `solutions.hands`), same frames, one run.

    .venv/bin/python bench/hands_vs_mediapipe.py [--complexity lite full] [--frames 300] [--threads 1]

MediaPipe runs in the bench venv and worker process bench/blazepose_vs_mediapipe.py sets up (`.bench-venv/`),
frame by frame in turn with piposer (see there). Frames: every photo of coco_dev and pose_extra (image mode);
a camera panning over the photos with two hands (video mode: both sides follow hands from frame to frame); and
the room videos (video mode; their people are too small for hands: measured, neither side finds any).

Agreement: hands of the two sides are paired by their mean landmark distance (closest first, a pair only
if under a quarter of MediaPipe's hand box diagonal); per landmark, the distance over the diagonal of the
box around MediaPipe's 21 landmarks; median and 95th percentile over all pairs. Handedness agreement
counts pairs whose labels match, MediaPipe's taken in its mirrored-selfie convention (its "Left" is the
hand piposer calls right). Speed: median milliseconds per frame of each side and their ratio (MediaPipe's
time over piposer's: above 1 means piposer is faster), both with one TFLite/XNNPACK thread; wall time, and
CPU time (all threads of the process: MediaPipe runs its graph on two worker threads besides the caller's),
which a loaded machine moves much less. Pin both to one core with `taskset -c 0` for a like-for-like run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blazepose_vs_mediapipe import (  # noqa: E402
    BENCH_VENV, MEDIAPIPE, SHARED, VIDEOS, command_line, ensure_bench_venv, lockstep, runtime, serve, summarize)

COMPLEXITY = {"lite": 0, "full": 1}
IMAGE_DIRS = [SHARED / "data/coco_dev/images", SHARED / "data/pose_extra/images"]
SAME_HAND = 0.25  # mean landmark distance, in hand box diagonals, under which two hands are one
PAN_PHOTOS = ["pose_extra/images/aic_fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg", "coco_dev/images/000000109313.jpg"]
MIRRORED = {"Left": "right", "Right": "left"}  # MediaPipe's labels assume a mirrored (selfie) image


def serve_mediapipe(source: str, limit: int, complexity: str, video: bool) -> None:
    """Worker side (inside .bench-venv): one frame through MediaPipe's legacy hands solution per request line.

    The answer is one JSON line with the time of the call and each hand's landmarks (x, y in pixels) and
    handedness in piposer's terms.
    """
    import mediapipe as mp

    hands = mp.solutions.hands.Hands(static_image_mode=not video, max_num_hands=2,
                                     model_complexity=COMPLEXITY[complexity],
                                     min_detection_confidence=0.5, min_tracking_confidence=0.5)
    serve(hands, source, limit, lambda result, w, h: [
        {"xy": [[p.x * w, p.y * h] for p in lm.landmark], "hand": MIRRORED[label.classification[0].label]}
        for lm, label in zip(result.multi_hand_landmarks or [], result.multi_handedness or [])])


def describe(poses) -> list[dict]:
    return [{"xy": pose.xy().tolist(), "hand": pose.handedness} for pose in poses]


def agreement(ours: list, theirs: list) -> dict:
    """Landmark distances over MediaPipe's hand box diagonal for paired hands; unpaired hands on either side."""
    errors, same_hand, pairs, unpaired = [], 0, 0, 0
    for a_hands, b_hands in zip(ours, theirs):
        a_xy = [np.asarray(h["xy"]) for h in a_hands]
        b_xy = [np.asarray(h["xy"]) for h in b_hands]
        candidates = sorted(
            (np.linalg.norm(a - b, axis=1).mean() / np.linalg.norm(np.ptp(b, axis=0)), i, j)
            for i, a in enumerate(a_xy) for j, b in enumerate(b_xy))
        used_a, used_b = set(), set()
        for distance, i, j in candidates:
            if distance < SAME_HAND and i not in used_a and j not in used_b:
                used_a.add(i)
                used_b.add(j)
                errors.extend(np.linalg.norm(a_xy[i] - b_xy[j], axis=1) / np.linalg.norm(np.ptp(b_xy[j], axis=0)))
                same_hand += a_hands[i]["hand"] == b_hands[j]["hand"]
                pairs += 1
        unpaired += len(a_xy) + len(b_xy) - 2 * len(used_a)
    errors = np.asarray(errors)
    return {"median": float(np.median(errors)) if errors.size else float("nan"),
            "p95": float(np.percentile(errors, 95)) if errors.size else float("nan"),
            "pairs": pairs, "unpaired": unpaired, "same_hand": same_hand}


def compare(python: Path, source: str, limit: int, complexity: str, video: bool, threads: int) -> dict:
    from piposer.estimators import HandsSettings, ModelSettings
    from piposer.estimators.hands import HandsEstimator

    estimator = HandsEstimator(ModelSettings(name=f"hands-{complexity}", num_threads=threads),
                               HandsSettings(running_mode="video" if video else "image"))
    run = lockstep(python, [__file__, "--worker", source, str(limit), complexity, str(int(video))], estimator,
                   source, limit, describe)
    return summarize(run, agreement)


def image_list() -> str:
    paths = sorted(str(p) for d in IMAGE_DIRS for p in d.iterdir() if p.suffix in (".png", ".jpg", ".jpeg"))
    list_file = Path("/tmp/piposer_hands_bench_images.txt")
    list_file.write_text("\n".join(paths))
    return str(list_file)


def panned(limit: int) -> str:
    """Frames of a camera panning and zooming slowly over the photos with two hands, as a list of image files."""
    folder = Path("/tmp/piposer_hands_bench_pan")
    folder.mkdir(exist_ok=True)
    paths = []
    for name in PAN_PHOTOS:
        photo = cv2.imread(str(SHARED / "data" / name))
        h, w = photo.shape[:2]
        for i in range(limit // len(PAN_PHOTOS)):
            t = i / (limit // len(PAN_PHOTOS))
            side = 0.8 - 0.1 * t  # the view shrinks while it moves right: hands grow and move
            x0, y0 = int(t * (1 - side) * w), int((1 - side) * h / 2)
            paths.append(f"{folder}/{Path(name).stem}_{i:03}.png")
            view = photo[y0:y0 + int(side * h), x0:x0 + int(side * w)]
            # one frame size throughout, as a camera gives (MediaPipe keeps its ROIs in fractions of the frame)
            cv2.imwrite(paths[-1], cv2.resize(view, (int(0.8 * w), int(0.8 * h)), interpolation=cv2.INTER_AREA))
    list_file = folder / "frames.txt"
    list_file.write_text("\n".join(paths))
    return str(list_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--complexity", nargs="+", default=list(COMPLEXITY), choices=list(COMPLEXITY))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1,
                        help="piposer's TFLite threads (default 1: MediaPipe's XNNPACK default on desktop Linux)")
    args = parser.parse_args()
    python = ensure_bench_venv()
    print(f"piposer on {runtime()} with {args.threads} thread(s); MediaPipe {MEDIAPIPE.split('==')[1]} in {BENCH_VENV.name}\n")
    print("| model | input | mode | frames | hands paired | hands only one side found | median dist / hand diag | "
          "p95 | same handedness | piposer ms | MediaPipe ms | speed ratio | piposer CPU ms | MediaPipe CPU ms | "
          "CPU ratio | piposer palm detector runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    runs = [(image_list(), "photos", False), (panned(args.frames), "panned photos", True)] + [
        (str(v), v.name, True) for v in VIDEOS]
    for complexity in args.complexity:
        for source, label, video in runs:
            r = compare(python, source, args.frames, complexity, video, args.threads)
            print(f"| hands-{complexity} | {label} | {'video' if video else 'image'} | {r['frames']} | {r['pairs']} | "
                  f"{r['unpaired']} | {100 * r['median']:.2f}% | {100 * r['p95']:.2f}% | "
                  f"{r['same_hand']}/{r['pairs']} | {r['ours_ms']:.1f} | {r['theirs_ms']:.1f} | {r['speedup']:.2f}x | "
                  f"{r['ours_cpu_ms']:.1f} | {r['theirs_cpu_ms']:.1f} | {r['cpu_speedup']:.2f}x | "
                  f"{r['detector_runs']} |", flush=True)


if __name__ == "__main__":
    command_line(main, serve_mediapipe)
