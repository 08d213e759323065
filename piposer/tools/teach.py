"""`piposer teach` and `piposer poses`: record taught-pose examples from a source, list, remove and try them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

from ..errors import PiposerError
from ..rules.library import Example, PoseLibrary, check_label, teaching_subject


def open_pipeline(cfg, source: str, stages=(), store=None):
    """The pipeline (model found by `store`, tracker, stages) over `source` (a camera, stream, video file
    or folder)."""
    import dataclasses

    from ..estimators import create
    from ..runtime.pipeline import Pipeline
    from ..sources import open_source
    from ..tracking import Tracker

    pipeline = Pipeline(None, tracker=Tracker(cfg.tracking), stages=stages, min_pose_score=cfg.loop.min_pose_score)
    try:
        pipeline.estimator = create(cfg, running_mode="video", store=store)
        pipeline.source = open_source(dataclasses.replace(cfg.source, source=source, loop=False), log=lambda _: None)
    except BaseException:
        pipeline.close()
        raise
    return pipeline


def frames(pipeline, seconds: float, delay: float = 0.0):
    """(frame, poses, seconds since the start) for `seconds` of the source's media time after `delay`
    (skipped in a file, waited out on a camera), until the source ends."""
    start = None
    while True:
        frame = pipeline.read(timeout=1.0)
        if frame is None:
            if pipeline.source.finished:
                return
            continue
        poses = pipeline.process(frame)
        now = pipeline.source.media_time(frame)
        start = now + delay if start is None else start
        if now < start:
            continue
        if now - start >= seconds:
            return
        yield frame, poses, now - start


def record(pipeline, label: str, seconds: float, delay: float, interval: float, source: str,
           announce: Callable[[str], None] = print) -> list[Example]:
    """Examples of `label`: the teaching subject every `interval` seconds for `seconds` after `delay`."""
    check_label(label)
    if delay > 0 and pipeline.source.live:
        announce(f"get into the '{label}' pose: recording starts in {delay:g} s")
    examples, due, announced = [], 0.0, False
    for frame, poses, t in frames(pipeline, seconds, delay):
        if not announced:
            announce(f"recording '{label}' for {seconds:g} s")
            announced = True
        pose = teaching_subject(poses)
        if t >= due and pose is not None:
            examples.append(Example.from_pose(pose, label, source, frame.index))
            due = t + interval
    return examples


def teach(cfg, path: Path, label: str, source: str, seconds: float, delay: float, interval: float,
          store=None) -> str:
    """Record examples of `label` from `source` into the poses file at `path`; returns a summary line."""
    with open_pipeline(cfg, source, store=store) as pipeline:
        examples = record(pipeline, label, seconds, delay, interval, source)
        who = "hand" if pipeline.estimator.layout.handed else "person with both shoulders"
    if not examples:
        raise PiposerError(f"no {who} visible in {source} during those {seconds:g} s: nothing taught")
    library = PoseLibrary.load(path)
    library.add(examples)
    written = library.save()
    labels = library.labels()
    return (f"taught '{label}': {len(examples)} examples ({labels[label]} in all) -> {written}; "
            f"labels: {', '.join(f'{k} ({v})' for k, v in labels.items())}")


def list_poses(path: Path) -> list[str]:
    library = PoseLibrary.load(path)
    if not library.examples:
        return [f"{path}: no poses taught yet (piposer teach LABEL --source ...)"]
    lines = [f"{path}:"]
    kinds = library.kinds()
    for label, count in library.labels().items():
        sources = Counter(ex.source for ex in library.examples if ex.label == label)
        what = "hand shape" if kinds[label] == "hand" else "body pose"
        lines.append(f"  {label:20} {count:4} examples  {what:10}  from {', '.join(sources)}")
    return lines


def remove_pose(path: Path, label: str) -> str:
    library = PoseLibrary.load(path, missing_ok=False)
    removed = library.remove(label)
    if not removed:
        raise PiposerError(f"pose '{label}' is not taught in {path} (taught: {', '.join(library.labels()) or 'none'})")
    library.save()
    return f"removed '{label}' ({removed} examples) from {path}"


def test_poses(cfg, source: str, seconds: float, store=None) -> list[str]:
    """Run the classifier over `source`: one line per label change, then seconds per label per person."""
    from ..rules.poses import PoseStage

    PoseLibrary.load(cfg.poses.file, missing_ok=False)
    lines, shown, time_in = [], {}, Counter()
    with open_pipeline(cfg, source, stages=[PoseStage(cfg.poses)], store=store) as pipeline:
        previous = None
        for frame, poses, t in frames(pipeline, seconds):
            step = 0.0 if previous is None else t - previous
            previous = t
            for pose in poses:
                person = pose.track_id
                time_in[(person, pose.label)] += step
                if shown.get(person, "-") != pose.label:
                    shown[person] = pose.label
                    lines.append(f"{t:7.2f} s  person {person}: {pose.label or '(none)'}"
                                 f" {pose.label_confidence:.2f}")
    lines.append("seconds per person and label: " + (", ".join(
        f"{person}/{label or '(none)'} {s:.1f}" for (person, label), s in sorted(time_in.items(), key=str)) or "nobody seen"))
    return lines
