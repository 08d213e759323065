"""MoveNet's per-frame cost around the model: the loop's whole frame against the bare invoke, on the coco_dev
photos, for this checkout and an older revision side by side in one process, taking turns frame by frame.

    python bench/movenet_overhead.py [--models movenet-lightning ...] [--threads 2] [--against REV]

`piposer bench` gives the same figures for one checkout; on a shared machine its runs drift apart by more than
the change being measured, so this runs both at once. The revision's `piposer` comes from bench/revision.py.
`total - invoke` and the per-frame total/invoke are medians over frames; the ratio of the two medians is
printed too (what `piposer bench` prints), though on a loaded machine it drifts with the spread of both.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's piposer, not whichever one the venv has installed
sys.path.insert(0, str(ROOT / "bench"))
from revision import OLD, sides  # noqa: E402

SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")).resolve()
PHOTOS = SHARED / "data/coco_dev/images"
os.environ.setdefault("PIPOSER_MODEL_DIR", os.pathsep.join(str(SHARED / d) for d in ("models", "models/converted_from_tfjs")))


def pipeline(package: str, model: str, threads: int):
    """That package's MoveNet estimator in its Pipeline (no tracker or sinks), and its photo reader."""
    movenet = importlib.import_module(f"{package}.estimators.movenet")
    settings = importlib.import_module(f"{package}.estimators.settings")
    runtime = importlib.import_module(f"{package}.runtime.pipeline")
    feed = importlib.import_module(f"{package}.sources.feed")
    estimator = movenet.MoveNetEstimator(settings.ModelSettings(name=model, num_threads=threads))
    return runtime.Pipeline(estimator), feed.read_frame


def compare(packages: list[str], model: str, threads: int, repeat: int) -> dict[str, dict[str, float]]:
    """Medians (seconds) of each side's total, invoke, preprocess and decode, and per frame of total - invoke and
    total / invoke (under load the ratio of the two medians drifts with the spread of both)."""
    sides = {package: pipeline(package, model, threads) for package in packages}
    samples = {package: {"total": [], "invoke": [], "preprocess": [], "decode": [], "around": [], "ratio": []}
               for package in packages}
    for n, path in enumerate(sorted(PHOTOS.glob("*.jpg"))):
        frames = {package: read(path) for package, (_, read) in sides.items()}
        for package, (loop, _) in sides.items():
            loop.process(frames[package])  # warm-up, as `piposer bench` does
        for r in range(repeat):
            for package in packages if (n * repeat + r) % 2 else packages[::-1]:
                loop = sides[package][0]
                start = time.perf_counter()
                loop.process(frames[package])
                total = time.perf_counter() - start
                timings, s = loop.estimator.timings, samples[package]
                s["total"].append(total)
                s["around"].append(total - timings["invoke"])
                s["ratio"].append(total / timings["invoke"])
                for stage in ("invoke", "preprocess", "decode"):
                    s[stage].append(timings[stage])
    return {package: {k: statistics.median(v) for k, v in s.items()} for package, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["movenet-lightning", "movenet-multipose", "movenet-thunder"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10, help="runs per photo (default 10)")
    parser.add_argument("--against", metavar="REV", help="a git revision to run side by side (default: none)")
    args = parser.parse_args()
    with sides(args.against) as packages:
        print(f"{args.threads} thread(s), {args.repeat} runs per photo, medians in ms"
              + (f"; {OLD} = {args.against}" if args.against else ""))
        print("| model | code | total | invoke | preprocess | decode | total - invoke | total/invoke "
              "| per-frame total/invoke |\n|---|---|---|---|---|---|---|---|---|")
        for model in args.models:
            for package, m in compare(packages, model, args.threads, args.repeat).items():
                ms = {k: 1e3 * v for k, v in m.items()}
                print(f"| {model} | {package} | {ms['total']:.3f} | {ms['invoke']:.3f} | {ms['preprocess']:.3f} "
                      f"| {ms['decode']:.3f} | {ms['around']:.3f} | {m['total'] / m['invoke']:.3f} "
                      f"| **{m['ratio']:.3f}** |",
                      flush=True)


if __name__ == "__main__":
    main()
