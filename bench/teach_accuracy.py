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
import functools
import json
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
# "left"/"right" of the two largest people, or "annotation ID" (the detected pose best overlapping that
# ground-truth person of a photo). Labelled by looking at the frames and at crops of every annotated person:
#  room_single.avi (NTU A001 "drink water"): 0-30 she stands, cup held at the waist; 45-100 cup at her mouth.
#  room_pair.mp4: 0-20 both stand, arms down; 28-40 both reach out for a handshake (then they hug: not labelled).
#  street_multi.avi: 0-110 the woman in front holds a sign up above her head with one raised arm.
#  coco_dev / pose_extra photos: people standing upright (a man in a white shirt and an umpire at a ball
#  game, a man in a green shirt, wedding guests, a chef and a robed man seen from behind, a woman walking
#  past a mirror, two men at a market stall, a coach in a suit, two women in coats); sitting (two men on
#  stools, a motorcyclist, two motocross riders, two men at a desk and a go board, seven wheelchair
#  dancers); arms out wide (a skateboarder in the air, a footballer); an arm up (a boy holding an umbrella
#  above his head, a surfer); a hand at the mouth (a man eating cake). Not labelled: skiers, ball players
#  mid-action, hugging dancers, people cut off by the frame.
LABELLED = [
    ("standing", "video/room_single.avi", (0, 30, 2), "largest"),
    ("standing", "video/room_pair.mp4", (0, 20, 2), "left"),
    ("standing", "video/room_pair.mp4", (0, 20, 2), "right"),
    ("standing", "tflite_pose_testdata/image2.jpeg", None, "largest"),
    ("hand_to_mouth", "video/room_single.avi", (45, 100, 2), "largest"),
    ("arm_up", "video/street_multi.avi", (0, 110, 3), "largest"),
    ("reaching", "video/room_pair.mp4", (28, 40, 1), "left"),
    ("reaching", "video/room_pair.mp4", (28, 40, 1), "right"),
    ("standing", "coco_dev/images/000000196141.jpg", None, "annotation 488308"),
    ("standing", "coco_dev/images/000000196141.jpg", None, "annotation 1724673"),
    ("standing", "coco_dev/images/000000109313.jpg", None, "annotation 201384"),
    ("standing", "coco_dev/images/000000350679.jpg", None, "annotation 495849"),
    ("standing", "coco_dev/images/000000350679.jpg", None, "annotation 503696"),
    ("standing", "coco_dev/images/000000397133.jpg", None, "annotation 200887"),
    ("standing", "coco_dev/images/000000435206.jpg", None, "annotation 198481"),
    ("standing", "pose_extra/images/ochuman_000817.jpg", None, "annotation 9000002"),
    ("standing", "pose_extra/images/ochuman_000817.jpg", None, "annotation 9000003"),
    ("standing", "pose_extra/images/crowdpose_103319.jpg", None, "annotation 9000009"),
    ("standing", "pose_extra/images/crowdpose_103319.jpg", None, "annotation 9000010"),
    ("standing", "pose_extra/images/aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", None, "annotation 9000018"),
    ("standing", "pose_extra/images/aic_054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg", None, "annotation 9000011"),
    ("standing", "pose_extra/images/aic_054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg", None, "annotation 9000013"),
    ("sitting", "coco_dev/images/000000040083.jpg", None, "annotation 198196"),
    ("sitting", "coco_dev/images/000000040083.jpg", None, "annotation 230195"),
    ("sitting", "coco_dev/images/000000165518.jpg", None, "annotation 209396"),
    ("sitting", "coco_dev/images/000000192699.jpg", None, "annotation 221722"),
    ("sitting", "coco_dev/images/000000192699.jpg", None, "annotation 2163098"),
    ("sitting", "pose_extra/images/aic_fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg", None, "annotation 9000015"),
    ("sitting", "pose_extra/images/aic_fa436c914fe4a8ec1ec5474af4d3820b84d17561.jpg", None, "annotation 9000016"),
    *[("sitting", "pose_extra/images/posetrack18_012834_mpii_test_000000.jpg", None, f"annotation {a}")
      for a in (9000020, 9000022, 9000024, 9000026, 9000028, 9000029, 9000030)],
    ("arms_out", "coco_dev/images/000000349860.jpg", None, "annotation 488820"),
    ("arms_out", "pose_extra/images/aic_ff945ae2e729f24eea992814639d59b3bdec8bd8.jpg", None, "annotation 9000019"),
    ("arm_up", "coco_dev/images/000000181303.jpg", None, "annotation 460884"),
    ("arm_up", "coco_dev/images/000000549055.jpg", None, "annotation 427472"),
    ("hand_to_mouth", "pose_extra/images/crowdpose_106848.jpg", None, "annotation 9000008"),
]
# which labels really occur in each video (the others count as false triggers there)
DONE_IN = {"video/room_single.avi": {"standing", "hand_to_mouth"},
           "video/room_pair.mp4": {"standing", "reaching"},
           "video/street_multi.avi": {"standing", "arm_up"}}


@functools.cache
def annotation_boxes() -> dict[int, tuple[float, float, float, float]]:
    """Ground-truth person boxes (x0, y0, x1, y1) of the photo datasets, by annotation id."""
    boxes = {}
    for dataset in ("coco_dev", "pose_extra"):
        for a in json.loads((DATA / dataset / "person_keypoints.json").read_text())["annotations"]:
            x, y, w, h = a["bbox"]
            boxes[a["id"]] = (x, y, x + w, y + h)
    return boxes


def pick(poses: list[Pose], who: str) -> Pose | None:
    """The labelled person: the largest pose, the left/right one of the two largest, or the pose whose box
    overlaps ground-truth annotation ID's box most (None below IoU 0.3: the model missed that person)."""
    if who.startswith("annotation "):
        x0, y0, x1, y1 = annotation_boxes()[int(who.split()[1])]

        def iou(p: Pose) -> float:
            b = p.box
            inter = max(0.0, min(x1, b.x1) - max(x0, b.x0)) * max(0.0, min(y1, b.y1) - max(y0, b.y0))
            return inter / ((x1 - x0) * (y1 - y0) + b.area - inter)
        best = max(poses, key=iou, default=None)
        return best if best is not None and iou(best) >= 0.3 else None
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
