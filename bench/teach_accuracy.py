"""Taught poses on real footage: leave-one-out accuracy, per-frame cost, false triggers.

Examples are PoseNet's poses on frames of the shared videos and photos that were labelled by eye
(LABELLED below: which frames, which person, and why). Then:

- leave-one-out: each example classified by all the others; and leave-one-block-out, where every
  example of the same clip within +-1 s is left out too (neighbouring video frames are near copies);
- cost: the classifier stage (normalize, k-NN, smoothing) for 5 people and 20 labels x 25 examples;
- false triggers: the appliance's path (PoseNet, tracker, classifier taught with every example, one
  `pose = LABEL` rule per label) over each whole video, counting rising edges of labels nobody in
  that video does.

    .venv/bin/python bench/teach_accuracy.py [--out poses.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from piposer import config  # noqa: E402
from piposer.estimators import create  # noqa: E402
from piposer.rules.library import Example, PoseLibrary, PoseSettings  # noqa: E402
from piposer.rules.poses import PoseClassifier, PoseStage, example_points  # noqa: E402
from piposer.types import Frame, Pose  # noqa: E402

DATA = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared")) / "data"

# (label, file under data/, frames (first, last, step) or None for a photo, who): `who` is "largest",
# or "left"/"right" of the two largest people. Labelled by looking at the frames:
#  room_single.avi (NTU A001 "drink water"): 0-30 she stands, cup held at the waist; 45-100 cup at her mouth.
#  room_pair.mp4: 0-20 both stand, arms down; 28-40 both reach out for a handshake (then they hug: not labelled).
#  street_multi.avi: 0-110 the woman in front holds a sign up above her head with one raised arm.
#  coco_dev 000000040083.jpg: the two men sitting on stools; tflite image2.jpeg and coco 000000109313.jpg: standing men.
LABELLED = [
    ("standing", "video/room_single.avi", (0, 30, 2), "largest"),
    ("standing", "video/room_pair.mp4", (0, 20, 2), "left"),
    ("standing", "video/room_pair.mp4", (0, 20, 2), "right"),
    ("standing", "tflite_pose_testdata/image2.jpeg", None, "largest"),
    ("standing", "coco_dev/images/000000109313.jpg", None, "largest"),
    ("hand_to_mouth", "video/room_single.avi", (45, 100, 2), "largest"),
    ("arm_up", "video/street_multi.avi", (0, 110, 3), "largest"),
    ("reaching", "video/room_pair.mp4", (28, 40, 1), "left"),
    ("reaching", "video/room_pair.mp4", (28, 40, 1), "right"),
    ("sitting", "coco_dev/images/000000040083.jpg", None, "left"),
    ("sitting", "coco_dev/images/000000040083.jpg", None, "right"),
]
# which labels really occur in each video (the others count as false triggers there)
DONE_IN = {"video/room_single.avi": {"standing", "hand_to_mouth"},
           "video/room_pair.mp4": {"standing", "reaching"},
           "video/street_multi.avi": {"standing", "arm_up"}}


def pick(poses: list[Pose], who: str) -> Pose | None:
    """The labelled person: the largest pose, or the left/right one of the two largest."""
    poses = sorted(poses, key=lambda p: p.box.area, reverse=True)
    if who == "largest" or len(poses) < 2:
        return poses[0] if poses and who == "largest" else None
    left, right = sorted(poses[:2], key=lambda p: p.box.x0 + p.box.x1)
    return left if who == "left" else right


def video_frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield index, image
            index += 1
    finally:
        cap.release()


def labelled_examples(estimator, labelled=LABELLED) -> list[Example]:
    """The examples LABELLED names, from PoseNet's poses on those frames."""
    examples = []
    for label, name, span, who in labelled:
        path = DATA / name
        if span is None:
            shots = [(0, cv2.imread(str(path)))]
        else:
            first, last, step = span
            shots = [(i, im) for i, im in video_frames(path) if first <= i <= last and (i - first) % step == 0]
        for index, image in shots:
            pose = pick(estimator.estimate(Frame(image, index, 0.0)), who)
            if pose is not None:
                examples.append(Example.from_pose(pose, label, name, index))
    return examples


def leave_out(examples: list[Example], settings: PoseSettings, block_frames: int | None) -> tuple[float, Counter]:
    """Accuracy (top label among the votes) with each example held out, and with `block_frames` also
    the examples of the same clip within that many frames; returns it and the (truth, predicted) counts."""
    clf = PoseClassifier(examples, settings.k, settings.max_distance, settings.mirror)
    d = clf.distances(example_points(examples))
    sources = np.array([ex.source for ex in examples])
    frames = np.array([ex.frame if ex.frame is not None else -10**6 for ex in examples])
    held = np.eye(len(examples), dtype=bool)
    if block_frames is not None:
        held |= (sources[:, None] == sources[None]) & (np.abs(frames[:, None] - frames[None]) <= block_frames)
    pairs = Counter()
    for i, ex in enumerate(examples):
        keep = ~held[i]
        sub = PoseClassifier([e for e, k in zip(examples, keep) if k], settings.k, settings.max_distance, settings.mirror)
        scores = sub.vote(d[i:i + 1, keep])[0]
        predicted = sub.labels[int(np.argmax(scores))] if scores.max() > 0 else "(none)"
        pairs[(ex.label, predicted)] += 1
    correct = sum(n for (truth, predicted), n in pairs.items() if truth == predicted)
    return correct / len(examples), pairs


def cost(examples: list[Example], settings: PoseSettings, people: int = 5, labels: int = 20, per_label: int = 25,
         repeat: int = 2000) -> dict:
    """Median ms of the classifier stage for `people` poses against `labels` x `per_label` examples."""
    rng = np.random.default_rng(0)
    pool = [examples[i] for i in rng.integers(0, len(examples), labels * per_label)]
    many = [Example(f"label{i // per_label}", [None if p is None else (p[0] + rng.normal(0, 3), p[1] + rng.normal(0, 3))
                                               for p in ex.points]) for i, ex in enumerate(pool)]
    library = Path("/tmp/piposer-teach-bench-poses.json")
    PoseLibrary(library, many).save()
    stage = PoseStage(PoseSettings(file=str(library)), reload_every=1e9)
    estimator = create(config.load(None), running_mode="image")
    shots = [im for i, im in video_frames(DATA / "video/street_multi.avi") if i == 30]
    poses = sorted(estimator.estimate(Frame(shots[0], 30, 0.0)), key=lambda p: -p.box.area)[:people]
    for i, p in enumerate(poses):
        p.track_id = i
    times = []
    for n in range(repeat):
        t = time.perf_counter()
        stage.update(poses, n / 30)
        times.append(time.perf_counter() - t)
    library.unlink()
    return {"people": len(poses), "examples": len(many), "labels": labels, "p50_ms": statistics.median(times) * 1000,
            "p95_ms": float(np.percentile(times, 95)) * 1000}


def false_triggers(examples: list[Example], settings: PoseSettings, activate_after: float) -> list[dict]:
    """Rising edges of `pose = LABEL` rules (per person) over each whole video, for labels not done in it."""
    from piposer.rules.engine import RulesEngine
    from piposer.rules.settings import Condition, RuleSettings
    from piposer.runtime.pipeline import Pipeline
    from piposer.sources import open_video
    from piposer.tracking import Tracker

    library = Path("/tmp/piposer-teach-bench-all.json")
    PoseLibrary(library, examples).save()
    labels = sorted({ex.label for ex in examples})
    cfg = config.load(None)
    out = []
    for video, done in DONE_IN.items():
        stage = PoseStage(PoseSettings(**{**settings.__dict__, "file": str(library)}))
        source = open_video(DATA / video)
        clock = {"t": 0.0}
        rules = [RuleSettings(name=f"is_{label}", when=Condition(pose=label), per_person=True,
                              activate_after=activate_after) for label in labels]
        engine = RulesEngine(rules, clock=lambda: clock["t"])
        edges, person_seconds = Counter(), 0.0
        with Pipeline(create(cfg, running_mode="video"), source=source, tracker=Tracker(cfg.tracking), stages=[stage],
                      min_pose_score=cfg.loop.min_pose_score) as pipeline:
            fps = source.device.fps
            while (frame := pipeline.read(timeout=1.0)) is not None:
                poses = pipeline.process(frame)
                clock["t"] = source.media_time(frame)
                person_seconds += len(poses) / fps
                for outcome in engine.update(poses)[0]:
                    edges[outcome.rule.name[3:]] += sum(edge == "rising" for edge, _ in outcome.edges)
                frames = frame.index + 1
        minutes = frames / fps / 60
        for label in labels:
            if label not in done:
                out.append({"video": video, "label": label, "rising": edges[label], "minutes": minutes,
                            "person_minutes": person_seconds / 60})
    library.unlink()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="also save the labelled examples as a poses file")
    args = p.parse_args()
    settings = PoseSettings()
    estimator = create(config.load(None), running_mode="image")
    examples = labelled_examples(estimator)
    if args.out:
        PoseLibrary(Path(args.out), examples).save()
    counts = Counter(ex.label for ex in examples)
    print(f"examples: {len(examples)} ({', '.join(f'{k} {v}' for k, v in counts.items())}); settings {settings}")
    for name, block in (("leave-one-out", None), ("leave-one-block-out (+-1 s of the same clip)", 30)):
        accuracy, pairs = leave_out(examples, settings, block)
        print(f"{name}: accuracy {accuracy:.3f}")
        for label in counts:
            row = {pred: n for (truth, pred), n in pairs.items() if truth == label}
            print(f"  {label:14} {row.get(label, 0)}/{counts[label]} correct; predicted {dict(sorted(row.items()))}")
    c = cost(examples, settings)
    print(f"cost: {c['people']} people x {c['labels']} labels ({c['examples']} examples): "
          f"p50 {c['p50_ms']:.3f} ms, p95 {c['p95_ms']:.3f} ms per frame")
    for activate_after in (0.0, 0.3):
        rows = false_triggers(examples, settings, activate_after)
        total = sum(r["rising"] for r in rows)
        print(f"false triggers, activate_after = {activate_after}: {total} rising edges in total")
        for r in rows:
            print(f"  {r['video']:24} {r['label']:14} {r['rising']} in {r['minutes'] * 60:.1f} s "
                  f"({r['person_minutes'] * 60:.1f} person-s) = {r['rising'] / r['minutes']:.1f}/min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
