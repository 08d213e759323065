"""Poses in another keypoint layout, for outputs that want one (`piposer video --layout coco18`).

A keypoint of the target layout is the same-named keypoint of the pose, or derived from its neighbours:
OpenPose's neck is the middle of the shoulders and MPI's chest the middle of shoulders and hips, each
scoring the least of the keypoints it comes from (so it is detected only when all of them are). MPI's
head top has nothing to be derived from: it is never detected, placed at the middle of the head keypoints
the pose has (the model's best guess of the head, not of its top).
"""

from __future__ import annotations

from dataclasses import replace

from .errors import PiposerError
from .types import BLAZEPOSE33, COCO17, COCO18, MPI15, Keypoint, Layout, Pose, box_of

OUTPUT_LAYOUTS = {layout.name: layout for layout in (COCO17, COCO18, MPI15, BLAZEPOSE33)}
SHOULDERS, HIPS = ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")
DERIVED = {"neck": SHOULDERS, "chest": SHOULDERS + HIPS}
HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


def output_layout(name: str) -> Layout:
    """The output layout called `name`; an unknown one is an error listing the choices."""
    if name not in OUTPUT_LAYOUTS:
        raise PiposerError(f"--layout {name}: unknown layout (choose from {', '.join(OUTPUT_LAYOUTS)})")
    return OUTPUT_LAYOUTS[name]


def check_convertible(source: Layout, target: Layout, what: str = "") -> None:
    """Raise a one-line error, starting with `what` (default `--layout <target>`), when poses of `source` cannot
    be given in `target` (hands as a body, COCO as BlazePose)."""
    have = set(source.keypoints) | (set(DERIVED) if set(SHOULDERS + HIPS) <= set(source.keypoints) else set())
    missing = [name for name in target.keypoints if name not in have and name != "head_top"]
    if missing or ("head_top" in target.keypoints and not set(HEAD) & set(source.keypoints)):
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise PiposerError(f"{what or '--layout ' + target.name}: the model's {source.name} poses have no "
                           f"{named or 'head keypoints'}")


def _merged(name: str, parts: list[Keypoint], width: int, height: int) -> Keypoint:
    x, y = (sum(getattr(k, axis) for k in parts) / len(parts) for axis in ("x", "y"))
    score = min(k.score for k in parts)
    return Keypoint(name, x, y, x / width, y / height, score, all(k.detected for k in parts))


def to_layout(pose: Pose, target: Layout) -> Pose:
    """The same pose in the `target` layout (see the module docstring for derived keypoints)."""
    if pose.layout is target:
        return pose
    width, height = pose.image_size
    by_name = {k.name: k for k in pose.keypoints}
    keypoints = []
    for name in target.keypoints:
        if name in by_name:
            keypoints.append(replace(by_name[name]))
        elif name in DERIVED:
            keypoints.append(_merged(name, [by_name[n] for n in DERIVED[name]], width, height))
        else:  # head_top
            head = [by_name[n] for n in HEAD if n in by_name]
            seen = [k for k in head if k.detected] or head
            keypoints.append(replace(_merged(name, seen, width, height), score=0.0, detected=False))
    box = box_of([k.x for k in keypoints], [k.y for k in keypoints], [k.detected for k in keypoints])
    index = [pose.layout.keypoints.index(n) for n in target.keypoints if n in by_name]
    world = pose.world[index] if pose.world is not None and len(index) == len(target.keypoints) else None
    return replace(pose, keypoints=tuple(keypoints), layout=target, box=box, world=world)
