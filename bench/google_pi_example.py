"""piposer's MoveNet against Google's Raspberry Pi pose example's own MoveNet code, same frames, one run.

    python bench/google_pi_example.py --get-example https://github.com/tensorflow/examples   # once
    python bench/google_pi_example.py [--models movenet-multipose movenet-lightning movenet-thunder]
                                      [--frames 120] [--threads 2]

Google's code (tensorflow/examples, lite/examples/pose_estimation/raspberry_pi: ml/movenet.py,
ml/movenet_multipose.py, data.py, utils.py, tracker/) is never part of piposer: `--get-example SOURCE`
copies that folder into the gitignored `.bench-cache/` from a git URL (sparse shallow clone) or a local git
directory (git archive), and the bench itself fetches nothing. Its one import piposer's venv lacks,
`ai_edge_litert.interpreter` (else it falls back to full TensorFlow), is shimmed with the TFLite runtime
piposer's backend uses, and the shim overrides the example's hard-coded `num_threads=4` with `--threads`,
so both sides run the same model file, runtime and thread count.

Both sides see the same frames (the shared videos, then the coco_dev photos), take turns frame by frame
(who goes first alternates) and are timed on their whole per-frame call: piposer's `estimate(frame)` on
the BGR frame, the example's `detect(rgb)` (it wants RGB; its own loop passes the camera's BGR frame
unconverted, a slip we do not copy, so the conversion is done outside its timing). For MultiPose the
example's default bounding-box tracker runs inside `detect`; its time is reported apart and taken out of
the example's estimator figure. `example - piposer ms` is the median over frames of the two calls' difference
on the same frame (positive: piposer is faster), steadier on a loaded machine than the ratio of medians;
`around invoke` is each side's call minus its bare invoke (the example's interpreter is timed through the
shim), the part where the two codes differ.
Photos reset the SinglePose crop region on both sides (image mode).

Agreement: people are paired by smallest mean keypoint distance; per keypoint both score >= 0.3, the
distance between the two results over the diagonal of the box around the example's keypoints; median and
95th percentile, and how many people only one side reported (both at pose score >= 0.11, the example's
default threshold).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's piposer, not whichever one the venv has installed
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")).resolve()
CACHE = ROOT / ".bench-cache/tf-examples"
EXAMPLE = "lite/examples/pose_estimation/raspberry_pi"
VIDEOS = ["room_single.avi", "room_pair.mp4", "street_multi.avi"]
PHOTOS = SHARED / "data/coco_dev/images"
THRESHOLD = 0.11  # MoveNetMultiPose.detect's default detection_threshold
VISIBLE = 0.3
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join(str(SHARED / d) for d in ("models", "models/converted_from_tfjs")))


def get_example(source: str) -> None:
    """Copy the example's folder into .bench-cache/ from a git URL or a local git directory, with its commit."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if Path(source).is_dir():
        archive = subprocess.run(["git", "--git-dir", source, "archive", "HEAD", EXAMPLE], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(CACHE)], input=archive, check=True)
        commit = subprocess.run(["git", "--git-dir", source, "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True).stdout
    else:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["git", "clone", "-q", "--depth", "1", "--filter=blob:none", "--sparse", source, tmp],
                           check=True)
            subprocess.run(["git", "-C", tmp, "sparse-checkout", "set", EXAMPLE], check=True)
            subprocess.run(["cp", "-r", f"{tmp}/lite", str(CACHE)], check=True)
            commit = subprocess.run(["git", "-C", tmp, "rev-parse", "HEAD"], check=True, capture_output=True,
                                    text=True).stdout
    (CACHE / "COMMIT").write_text(commit)
    print(f"example at {CACHE / EXAMPLE}, commit {commit.strip()}")


def import_example(threads: int):
    """The example's Movenet and MoveNetMultiPose classes, its interpreter import shimmed (see the docstring)."""
    from piposer.backend import interpreter_class

    folder = CACHE / EXAMPLE
    if not (folder / "ml/movenet.py").exists():
        sys.exit(f"error: Google's example is not in {folder}: run this script with --get-example "
                 f"https://github.com/tensorflow/examples (or a local git directory of that repository) first")
    runtime = interpreter_class()

    class TimedInterpreter(runtime):
        """The runtime's Interpreter, keeping how long its last invoke took."""

        last_invoke = 0.0

        def invoke(self):
            start = time.perf_counter()
            super().invoke()
            self.last_invoke = time.perf_counter() - start

    def interpreter(model_path: str, num_threads: int | None = None, **options):
        return TimedInterpreter(model_path=model_path, num_threads=threads, **options)

    shim = types.ModuleType("ai_edge_litert.interpreter")
    shim.Interpreter = interpreter
    package = types.ModuleType("ai_edge_litert")
    package.interpreter = shim
    sys.modules.update({"ai_edge_litert": package, "ai_edge_litert.interpreter": shim})
    sys.path.insert(0, str(folder))
    from ml.movenet import Movenet
    from ml.movenet_multipose import MoveNetMultiPose

    return Movenet, MoveNetMultiPose


class Example:
    """One of the example's MoveNet classes on a model file, with its tracker's time and input kept apart."""

    def __init__(self, classes, path: Path, multipose: bool):
        single, multi = classes
        self.multipose = multipose
        self.model = multi(str(path)) if multipose else single(str(path))
        self.tracker_seconds = 0.0
        self.untracked: list = []
        if multipose:
            apply = self.model._tracker.apply

            def timed_apply(persons, timestamp):
                self.untracked = persons
                start = time.perf_counter()
                tracked = apply(persons, timestamp)
                self.tracker_seconds = time.perf_counter() - start
                return tracked

            self.model._tracker.apply = timed_apply

    def detect(self, rgb: np.ndarray, reset: bool) -> tuple[float, float, list[np.ndarray]]:
        """Seconds of the whole call, seconds of its tracker, and each person's (17, 3) x, y, score."""
        start = time.perf_counter()
        result = self.model.detect(rgb) if self.multipose else [self.model.detect(rgb, reset_crop_region=reset)]
        elapsed = time.perf_counter() - start
        persons = self.untracked if self.multipose else result
        return elapsed, self.tracker_seconds if self.multipose else 0.0, [
            np.array([[k.coordinate.x, k.coordinate.y, k.score] for k in p.keypoints]) for p in persons
            if p.score >= THRESHOLD]


def piposer_side(name: str, threads: int, video: bool):
    """piposer's estimator on the same file, at the example's pose threshold, every keypoint reported."""
    from piposer.estimators import ModelSettings
    from piposer.estimators.movenet import MoveNetEstimator
    from piposer.estimators.settings import MoveNetSettings

    return MoveNetEstimator(ModelSettings(name=name, num_threads=threads, keypoint_threshold=0.0),
                            MoveNetSettings(min_pose_score=THRESHOLD, running_mode="video" if video else "image"))


def sources(frames: int):
    """(name, is_video, BGR frames) for each shared video (first `frames` frames) and the coco_dev photos."""
    for video in VIDEOS:
        capture = cv2.VideoCapture(str(SHARED / "data/video" / video))
        images = []
        while len(images) < frames:
            ok, image = capture.read()
            if not ok:
                break
            images.append(image)
        capture.release()
        yield video, True, images
    yield "coco_dev photos", False, [cv2.imread(str(p)) for p in sorted(PHOTOS.glob("*.jpg"))]


def pair_errors(ours: list[np.ndarray], theirs: list[np.ndarray]) -> tuple[list[float], int]:
    """Keypoint distances over the example person's box diagonal for greedily paired people, and the unpaired."""
    errors: list[float] = []
    if not ours or not theirs:
        return errors, len(ours) + len(theirs)
    cost = np.array([[np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean() for b in theirs] for a in ours])
    paired = 0
    while np.isfinite(cost).any():
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
        a, b = ours[i], theirs[j]
        diagonal = np.linalg.norm(b[:, :2].max(axis=0) - b[:, :2].min(axis=0)) or 1.0
        both = (a[:, 2] >= VISIBLE) & (b[:, 2] >= VISIBLE)
        errors.extend(np.linalg.norm(a[both, :2] - b[both, :2], axis=1) / diagonal)
        cost[i, :], cost[:, j] = np.inf, np.inf
        paired += 1
    return errors, len(ours) + len(theirs) - 2 * paired


def compare(classes, name: str, video: bool, images: list[np.ndarray], threads: int) -> dict:
    """Both sides over the same frames in turn; medians after the first (warm-up) frame."""
    from piposer.modelstore import ModelStore
    from piposer.types import Frame

    ours = piposer_side(name, threads, video)
    theirs = Example(classes, ModelStore.from_environment().resolve(name).path, not ours.single)
    ours_s, theirs_s, tracker_s, errors, unpaired, people = [], [], [], [], 0, 0
    around: tuple[list[float], list[float]] = ([], [])  # each side's call minus its invoke
    for i, image in enumerate(images):
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for turn in ((0, 1) if i % 2 else (1, 0)):
            if turn == 0:
                start = time.perf_counter()
                poses = ours.estimate(Frame(image, i, i / 30))
                ours_s.append(time.perf_counter() - start)
                around[0].append(ours_s[-1] - ours.timings["invoke"])
            else:
                elapsed, tracking, persons = theirs.detect(rgb, reset=not video)
                theirs_s.append(elapsed - tracking)
                around[1].append(theirs_s[-1] - theirs.model._interpreter.last_invoke)
                tracker_s.append(tracking)
        mine = [np.array([[k.x, k.y, k.score] for k in p.keypoints]) for p in poses]
        frame_errors, frame_unpaired = pair_errors(mine, persons)
        errors += frame_errors
        unpaired += frame_unpaired
        people += len(persons)
    ours.close()
    errors = np.asarray(errors)
    ours_ms, theirs_ms = 1e3 * np.median(ours_s[1:]), 1e3 * np.median(theirs_s[1:])
    lead = 1e3 * np.median(np.subtract(theirs_s[1:], ours_s[1:]))  # per frame: steadier than the ratio under load
    return {"frames": len(images), "ours_ms": ours_ms, "theirs_ms": theirs_ms, "ratio": theirs_ms / ours_ms,
            "lead": lead,
            "around": [1e3 * np.median(a[1:]) for a in around],
            "tracker_ms": 1e3 * np.median(tracker_s[1:]), "median": float(np.median(errors)) if errors.size else np.nan,
            "p95": float(np.percentile(errors, 95)) if errors.size else np.nan, "unpaired": unpaired, "people": people}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--get-example", metavar="SOURCE", help="copy Google's example into .bench-cache/ and stop")
    parser.add_argument("--models", nargs="+", default=["movenet-multipose", "movenet-lightning", "movenet-thunder"])
    parser.add_argument("--frames", type=int, default=120, help="frames per video (default 120)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.get_example:
        get_example(args.get_example)
        return
    from piposer.backend import interpreter_class

    runtime = interpreter_class().__module__  # before the shim takes the ai_edge_litert name
    classes = import_example(args.threads)
    commit = (CACHE / "COMMIT").read_text().strip() if (CACHE / "COMMIT").exists() else "unknown"
    print(f"example commit {commit[:12]}, runtime {runtime}, {args.threads} threads")
    print("| model | frames | piposer ms | example ms | example/piposer | example - piposer ms "
          "| around invoke ms, piposer / example | example tracker ms | keypoint diff median | p95 "
          "| unpaired / example people |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for source, video, images in sources(args.frames):
            r = compare(classes, name, video, images, args.threads)
            print(f"| {name} {source} | {r['frames']} | {r['ours_ms']:.2f} | {r['theirs_ms']:.2f} | {r['ratio']:.3f} "
                  f"| {r['lead']:+.2f} | {r['around'][0]:.2f} / {r['around'][1]:.2f} "
                  f"| {r['tracker_ms']:.2f} | {r['median']:.4f} | {r['p95']:.4f} | {r['unpaired']} / {r['people']} |",
                  flush=True)


if __name__ == "__main__":
    main()
