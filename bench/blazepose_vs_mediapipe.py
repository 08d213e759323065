"""piposer's BlazePose against MediaPipe itself (mediapipe==0.10.14, legacy `solutions.pose`), same frames, one run.

    .venv/bin/python bench/blazepose_vs_mediapipe.py [--complexity lite full heavy] [--frames 103] [--threads 1]
    .venv/bin/python bench/blazepose_vs_mediapipe.py --coco     # COCO AP on coco_dev next to PoseNet's

MediaPipe is never a piposer dependency: it lives in its own venv (`.bench-venv/`, created and
filled with pip on first use) and runs in a worker process that this same script becomes with
`--worker` and that answers one frame at a time. Both sides read the same frames with OpenCV, take
turns frame by frame (so load from other processes hits both alike) and time only their pose call.

Agreement: per landmark, the distance between the two results divided by the diagonal of the
box around MediaPipe's 33 landmarks, over landmarks both call visible (visibility >= 0.5); the
median and 95th percentile over all frames. Speed: median milliseconds per frame of each side on
the same frames, and their ratio (MediaPipe's time over piposer's: above 1 means piposer is faster).
MediaPipe runs its models with one XNNPACK thread on desktop Linux, so piposer gets one too unless
`--threads` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")).resolve()
BENCH_VENV = ROOT / ".bench-venv"
MEDIAPIPE = "mediapipe==0.10.14"
COMPLEXITY = {"lite": 0, "full": 1, "heavy": 2}
VIDEOS = [SHARED / "data/video/room_single.avi", SHARED / "data/video/room_pair.mp4"]
IMAGE_DIRS = [SHARED / "data/tflite_pose_testdata", SHARED / "data/coco_dev/images"]
FPS = 30.0  # MediaPipe's solutions API stamps frames 1/30 s apart; piposer gets the same clock
VISIBLE = 0.5
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join(str(SHARED / d) for d in ("models", "models/converted_from_tfjs")))


def frames(source: str, limit: int):
    """BGR frames of a video file, or of a list of image files (one per line in `source`)."""
    if source.endswith(".txt"):
        for path in Path(source).read_text().split("\n")[:limit]:
            if path:
                yield cv2.imread(path)
        return
    capture = cv2.VideoCapture(source)
    for _ in range(limit):
        ok, image = capture.read()
        if not ok:
            break
        yield image
    capture.release()


def serve_mediapipe(source: str, limit: int, complexity: str, video: bool) -> None:
    """Worker side (inside .bench-venv): one frame through MediaPipe's legacy pose solution per request line.

    Each line on stdin asks for the next frame; the answer is one JSON line with the time of the
    pose call and the landmarks (x, y in pixels, visibility), or null when no pose was found.
    """
    import mediapipe as mp

    pose = mp.solutions.pose.Pose(static_image_mode=not video, model_complexity=COMPLEXITY[complexity],
                                  smooth_landmarks=True, enable_segmentation=False,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5)
    serve(pose, source, limit, lambda result, w, h: None if result.pose_landmarks is None else [
        [p.x * w, p.y * h, p.visibility] for p in result.pose_landmarks.landmark])


def serve(solution, source: str, limit: int, describe) -> None:
    """The worker loop: per request line on stdin, the next frame through a MediaPipe solution, answered as
    one JSON line with the time of its `process` call and `describe(result, width, height)`."""
    images = frames(source, limit)
    for _ in sys.stdin:
        # the frame is read after the request and before answering, while the piposer side waits: reading it
        # after answering (as zip(frames, stdin) did) decoded it on the same cores during piposer's timed call
        image = next(images, None)
        if image is None:
            break
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        start, cpu = time.perf_counter(), time.process_time()
        result = solution.process(rgb)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu  # cpu: all of MediaPipe's threads
        h, w = rgb.shape[:2]
        print(json.dumps({"time": elapsed, "cpu": cpu, "landmarks": describe(result, w, h)}), flush=True)
    solution.close()


def lockstep(python: Path, worker_args: list[str], estimator, source: str, limit: int, describe) -> dict:
    """Both sides over the same frames, alternating frame by frame so machine load hits both alike.

    `worker_args` start this script's (or a sibling's) MediaPipe worker; `describe` turns piposer's poses of
    a frame into what the worker answers with, for comparing.
    """
    from piposer.types import Frame

    worker = subprocess.Popen([str(python), *worker_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    ours, theirs = ({"landmarks": [], "times": [], "cpu": []} for _ in range(2))
    for i, image in enumerate(frames(source, limit)):
        worker.stdin.write("next\n")
        worker.stdin.flush()
        answer = json.loads(worker.stdout.readline())
        theirs["times"].append(answer["time"])
        theirs["cpu"].append(answer["cpu"])
        theirs["landmarks"].append(answer["landmarks"])
        frame = Frame(image, i, i / FPS)
        start, cpu = time.perf_counter(), time.process_time()
        poses = estimator.estimate(frame)
        ours["times"].append(time.perf_counter() - start)
        ours["cpu"].append(time.process_time() - cpu)
        ours["landmarks"].append(describe(poses))
    worker.stdin.close()
    worker.wait()
    estimator.close()
    ours["detector_runs"] = estimator.detector_runs
    return {"ours": ours, "theirs": theirs}


def blazepose_lockstep(python: Path, source: str, limit: int, complexity: str, video: bool, threads: int) -> dict:
    """piposer's BlazePose and MediaPipe's over the same frames (first pose of each frame)."""
    from piposer.estimators import ModelSettings
    from piposer.estimators.blazepose import BlazePoseEstimator, BlazePoseSettings

    estimator = BlazePoseEstimator(ModelSettings(name=f"blazepose-{complexity}", num_threads=threads),
                                   BlazePoseSettings(running_mode="video" if video else "image"))
    return lockstep(python, [__file__, "--worker", source, str(limit), complexity, str(int(video))], estimator,
                    source, limit,
                    lambda poses: [[k.x, k.y, k.visibility] for k in poses[0].keypoints] if poses else None)


def ensure_bench_venv() -> Path:
    """The separate venv with MediaPipe, and MediaPipe's lite/heavy models (the wheel only carries full).

    MediaPipe downloads those on first use; where its host is unreachable they are linked from
    piposer's model store (same files, same sha256).
    """
    python = BENCH_VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", MEDIAPIPE, "numpy<2",
                        "opencv-python-headless<4.11"], check=True)
    from piposer.modelstore import ModelStore

    store = ModelStore.from_environment()

    site = subprocess.run([str(python), "-c", "import mediapipe, os; print(os.path.dirname(mediapipe.__file__))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    for name in ("lite", "heavy"):
        target = Path(site) / f"modules/pose_landmark/pose_landmark_{name}.tflite"
        if not target.exists():
            target.symlink_to(store.resolve(f"blazepose-{name}").path.resolve())
    return python


def agreement(ours: list, theirs: list) -> dict:
    """Landmark distances over the bounding-box diagonal, and how often only one side found a pose."""
    errors, only_one = [], 0
    for a, b in zip(ours, theirs):
        if (a is None) != (b is None):
            only_one += 1
        if a is None or b is None:
            continue
        a, b = np.asarray(a), np.asarray(b)
        diagonal = np.linalg.norm(b[:, :2].max(axis=0) - b[:, :2].min(axis=0))
        both = (a[:, 2] >= VISIBLE) & (b[:, 2] >= VISIBLE)
        errors.extend(np.linalg.norm(a[both, :2] - b[both, :2], axis=1) / diagonal)
    errors = np.asarray(errors)
    return {"median": float(np.median(errors)) if errors.size else float("nan"),
            "p95": float(np.percentile(errors, 95)) if errors.size else float("nan"),
            "landmarks": int(errors.size), "only_one": only_one}


def summarize(run: dict, agree) -> dict:
    """One lockstep run's agreement (`agree(ours, theirs)` on the per-frame results) and median speed."""
    ours, theirs = run["ours"], run["theirs"]
    # the first frame includes warm-up (XNNPACK weight packing, graph start): left out of the speed
    ours_ms, theirs_ms = 1000 * np.median(ours["times"][1:]), 1000 * np.median(theirs["times"][1:])
    # CPU time per call, the process's all threads: what the frame costs however the machine's load falls
    ours_cpu, theirs_cpu = 1000 * np.median(ours["cpu"][1:]), 1000 * np.median(theirs["cpu"][1:])
    return {**agree(ours["landmarks"], theirs["landmarks"]), "frames": len(ours["times"]),
            "ours_ms": ours_ms, "theirs_ms": theirs_ms, "speedup": theirs_ms / ours_ms,
            "ours_cpu_ms": ours_cpu, "theirs_cpu_ms": theirs_cpu, "cpu_speedup": theirs_cpu / ours_cpu,
            "detector_runs": ours["detector_runs"]}


def compare(python: Path, source: str, limit: int, complexity: str, video: bool, threads: int) -> dict:
    return summarize(blazepose_lockstep(python, source, limit, complexity, video, threads), agreement)


def runtime() -> str:
    """Which TFLite runtime piposer's backend picked, with its version."""
    from importlib import metadata

    from piposer.backend import interpreter_class

    package = interpreter_class().__module__.split(".")[0].replace("_", "-")
    return f"{package} {metadata.version(package)}"


def image_list(limit: int) -> str:
    paths = sorted(str(p) for d in IMAGE_DIRS for p in d.iterdir() if p.suffix in (".png", ".jpg", ".jpeg"))
    list_file = Path(tempfile.gettempdir()) / "piposer_blazepose_bench_images.txt"
    list_file.write_text("\n".join(paths[:limit]))
    return str(list_file)


def coco_table() -> None:
    """COCO keypoint AP of PoseNet and BlazePose lite/full/heavy on coco_dev, the way `piposer eval` scores them."""
    from piposer.estimators import ModelSettings
    from piposer.estimators.blazepose import BlazePoseEstimator, BlazePoseSettings, to_coco17
    from piposer.estimators.posenet import PoseNetEstimator
    from piposer.tools.evaluate import coco_eval, predict

    annotations = SHARED / "data/coco_dev/person_keypoints.json"
    print("| model | AP | AP50 | AP75 | AR |\n|---|---|---|---|---|")
    estimators = [("posenet", PoseNetEstimator(ModelSettings(name="posenet")), None)] + [
        (f"blazepose-{c}", BlazePoseEstimator(ModelSettings(name=f"blazepose-{c}"), BlazePoseSettings(running_mode="image")),
         to_coco17) for c in COMPLEXITY]
    for name, estimator, to_coco in estimators:
        stats = coco_eval(annotations, predict(estimator, annotations, to_coco))
        print(f"| {name} | {stats['AP']:.3f} | {stats['AP50']:.3f} | {stats['AP75']:.3f} | {stats['AR']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--complexity", nargs="+", default=["lite", "full", "heavy"], choices=list(COMPLEXITY))
    parser.add_argument("--frames", type=int, default=103)
    parser.add_argument("--threads", type=int, default=1,
                        help="piposer's TFLite threads (default 1: MediaPipe's XNNPACK default on desktop Linux)")
    parser.add_argument("--coco", action="store_true", help="print COCO AP next to PoseNet's instead (no MediaPipe)")
    args = parser.parse_args()
    if args.coco:
        coco_table()
        return
    python = ensure_bench_venv()
    print(f"piposer on {runtime()} with {args.threads} thread(s); MediaPipe {MEDIAPIPE.split('==')[1]} in {BENCH_VENV.name}\n")
    print("| model | input | mode | frames | median dist / bbox diag | p95 | landmarks compared | "
          "frames only one side found a pose | piposer ms | MediaPipe ms | piposer fps | MediaPipe fps | speed ratio | "
          "piposer detector runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    images = image_list(1000)
    for complexity in args.complexity:
        runs = [(str(v), v.name, video) for v in VIDEOS for video in (True, False)] + [(images, "photos", False)]
        for source, label, video in runs:
            r = compare(python, source, args.frames, complexity, video, args.threads)
            print(f"| {complexity} | {label} | {'video' if video else 'image'} | {r['frames']} | "
                  f"{100 * r['median']:.2f}% | {100 * r['p95']:.2f}% | {r['landmarks']} | {r['only_one']} | "
                  f"{r['ours_ms']:.1f} | {r['theirs_ms']:.1f} | {1000 / r['ours_ms']:.1f} | {1000 / r['theirs_ms']:.1f} | "
                  f"{r['speedup']:.2f}x | {r['detector_runs']} |",
                  flush=True)


def command_line(main, serve_mediapipe) -> None:
    """A MediaPipe bench's entry point: `--worker SOURCE LIMIT COMPLEXITY VIDEO` is the MediaPipe side (run in
    the bench venv by `lockstep`), anything else the bench's own `main`."""
    if sys.argv[1:2] == ["--worker"]:
        source, limit, complexity, video = sys.argv[2:6]
        serve_mediapipe(source, int(limit), complexity, video == "1")
    else:
        main()


if __name__ == "__main__":
    command_line(main, serve_mediapipe)
