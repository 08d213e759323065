"""Taught poses on disk: labelled examples in one small versioned JSON file, and the `[poses]` settings.

An example keeps a person's raw keypoints (pixels by COCO-17 name, null where not detected) or, for a
hand shape, a hand's 21 landmarks by hand21 name, not the classifier's features, so a later, better normalization still reads old files. The file is rewritten
whole under a temporary name and renamed (sinks/files.py), so an interrupted `teach` never damages it.
Standard library only: the config loader checks rules against the taught labels without numpy.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..checks import check_range
from ..errors import ConfigError
from ..types import COCO17, HAND21, Pose
from .settings import NAME, RuleSettings, pose_labels

FORMAT = "piposer-poses"
VERSION = 2  # 2 added hand shapes ("kind": "hand"); version 1 files (body poses only) are still read
DEFAULT_FILE = "poses.json"
STORED = {"body": COCO17, "hand": HAND21}  # each kind of example and the layout its points are kept in
KINDS = tuple(STORED)


@dataclass
class PoseSettings:
    """[poses]: where the taught examples live and how the classifier decides (see rules/poses.py).

    `file` defaults to poses.json beside the config file (relative paths are taken from there).
    `k` nearest examples vote; only examples within `max_distance` (RMS, in body sizes; for hand shapes in
    palm lengths) count, so a pose unlike every example gets no label. `mirror` also matches each body
    example left-right mirrored (hand shapes always are: one shape fits either hand).
    Per person, confidences are smoothed with a time constant of `smooth` seconds; a label is given
    once its confidence reaches `enter` and kept until it falls below `release`.
    """

    file: str = ""
    k: int = 5
    max_distance: float = 0.5
    mirror: bool = True
    smooth: float = 0.3
    enter: float = 0.6
    release: float = 0.4

    def __post_init__(self):
        check_range("poses.k", self.k, 1, 100)
        check_range("poses.max_distance", self.max_distance, 0, lo_open=True)
        check_range("poses.smooth", self.smooth, 0)
        check_range("poses.enter", self.enter, 0, 1, lo_open=True)
        check_range("poses.release", self.release, 0, self.enter)

    def resolve(self, config_file: Path | None) -> None:
        """Make `file` absolute: relative to the config file's folder (the current one without a config)."""
        folder = Path(config_file).resolve().parent if config_file else Path.cwd()
        self.file = str(folder / Path(self.file or DEFAULT_FILE).expanduser())


@dataclass
class Example:
    """One labelled pose: keypoint pixel positions (None: not detected) in COCO-17 order for a body pose
    (`kind` "body"), in hand21 order for a hand shape ("hand")."""

    label: str
    points: list[tuple[float, float] | None]
    source: str = ""
    frame: int | None = None
    recorded: float = 0.0
    kind: str = "body"

    @classmethod
    def from_pose(cls, pose: Pose, label: str, source: str = "", frame: int | None = None) -> Example:
        """The pose's COCO-17 keypoints by name (BlazePose has them all), or a hand's 21 landmarks; undetected
        ones as None."""
        kind = "hand" if pose.layout.handed else "body"
        kps = {k.name: k for k in pose.keypoints}
        points = [(round(kps[n].x, 1), round(kps[n].y, 1)) if n in kps and kps[n].detected else None
                  for n in STORED[kind].keypoints]
        return cls(label, points, source, frame, round(time.time(), 3), kind)


def check_label(label: str) -> str:
    if not NAME.fullmatch(label):
        raise ConfigError(f"pose label {label!r}: use letters, digits, _ or - (e.g. arms_up)")
    return label


@dataclass
class PoseLibrary:
    """The examples of one poses file; `load` it, change it, `save` it."""

    path: Path
    examples: list[Example] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str, missing_ok: bool = True) -> PoseLibrary:
        """Read a poses file; a missing one is empty (or, without `missing_ok`, a ConfigError), a bad one
        a ConfigError naming it and what is wrong."""
        path = Path(path)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            if missing_ok:
                return cls(path)
            raise ConfigError(f"poses file not found: {path} (teach a pose first: piposer teach LABEL --source ...)") from None
        except OSError as exc:
            raise ConfigError(f"cannot read poses file {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ConfigError(f"poses file {path} is not valid JSON: {exc}") from None
        return cls(path, _examples(data, path))

    def labels(self) -> dict[str, int]:
        """Each label and its number of examples, in the order first taught."""
        counts: dict[str, int] = {}
        for ex in self.examples:
            counts[ex.label] = counts.get(ex.label, 0) + 1
        return counts

    def kinds(self) -> dict[str, str]:
        """Each label and whether it is a body pose ("body") or a hand shape ("hand")."""
        return {ex.label: ex.kind for ex in self.examples}

    def add(self, examples: Iterable[Example]) -> int:
        """Add examples; a label taught as the other kind (a body pose named like a hand shape) is a ConfigError."""
        new = list(examples)
        kinds = self.kinds()
        for ex in new:
            check_label(ex.label)
            if kinds.setdefault(ex.label, ex.kind) != ex.kind:
                what = {"body": "body pose", "hand": "hand shape"}
                raise ConfigError(f"pose label {ex.label!r} is taught as a {what[kinds[ex.label]]} in {self.path}; "
                                  f"give the {what[ex.kind]} another name")
        self.examples.extend(new)
        return len(new)

    def remove(self, label: str) -> int:
        """Forget every example of `label`; returns how many there were."""
        kept = [ex for ex in self.examples if ex.label != label]
        removed = len(self.examples) - len(kept)
        self.examples = kept
        return removed

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION,
            "keypoints": {kind: list(layout.keypoints) for kind, layout in STORED.items()},
            "examples": [{"label": ex.label, "kind": ex.kind, "points": [list(p) if p else None for p in ex.points],
                          "source": ex.source, "frame": ex.frame, "recorded": ex.recorded}
                         for ex in self.examples],
        }

    def save(self) -> Path:
        """Write the whole file atomically (temp file, fsync, rename); OutputError naming it if that fails."""
        from ..sinks.files import write_bytes

        data = self.to_dict()
        examples = ",\n  ".join(json.dumps(ex) for ex in data.pop("examples"))  # one example per line
        text = json.dumps(data)[:-1] + (f',\n "examples": [\n  {examples}\n ]}}\n' if examples else ', "examples": []}\n')
        return write_bytes(self.path, text.encode(), overwrite=True)


def _examples(data, path: Path) -> list[Example]:
    where = f"poses file {path}"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{where} is not a piposer poses file (no \"format\": \"{FORMAT}\")")
    if data.get("version") not in (1, VERSION):
        raise ConfigError(f"{where} has version {data.get('version')!r}; this piposer reads versions 1 to {VERSION}")
    names = data.get("keypoints")
    names = {"body": names} if data["version"] == 1 else names  # version 1: body poses, names in a list
    if not isinstance(names, dict) or not set(names) <= set(STORED) or any(
            not isinstance(v, list) or not set(v) <= set(STORED[k].keypoints) for k, v in names.items()):
        raise ConfigError(f"{where}: \"keypoints\" must list COCO-17 keypoint names (and hand21 names under \"hand\")")
    order = {kind: [names[kind].index(n) if n in names[kind] else None for n in STORED[kind].keypoints] for kind in names}
    examples = []
    for i, item in enumerate(data.get("examples", [])):
        try:
            label = check_label(item["label"])
            kind = item.get("kind", "body")
            if kind not in order:
                raise ValueError(f"kind {kind!r} is not one of {', '.join(order)}")
            raw = item["points"]
            if len(raw) != len(names[kind]):
                raise ValueError(f"{len(raw)} points for {len(names[kind])} keypoints")
            points = [None if j is None or raw[j] is None else (float(raw[j][0]), float(raw[j][1])) for j in order[kind]]
            examples.append(Example(label, points, str(item.get("source", "")), item.get("frame"),
                                    float(item.get("recorded", 0.0)), kind))
        except ConfigError as exc:
            raise ConfigError(f"{where}: examples[{i}]: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{where}: examples[{i}] is malformed ({type(exc).__name__}: {exc})") from None
    return examples


def teaching_subject(poses: list[Pose]) -> Pose | None:
    """Whom an example is taken from: the largest person in view with both shoulders seen (the one
    in front of the camera), or with a hands model the largest hand with its wrist seen; or None."""
    def usable(p: Pose) -> bool:
        if p.layout.handed:
            return p["wrist"].detected
        return p["left_shoulder"].detected and p["right_shoulder"].detected
    return max((p for p in poses if usable(p)), key=lambda p: p.box.area, default=None)


def record_pose(path: Path | str, label: str, poses: list[Pose], source: str = "console",
                frame: int | None = None) -> int:
    """Add the current frame's teaching subject as an example of `label` to the poses file and save it;
    returns the label's number of examples (0: nobody suitable in view, nothing written). What a
    "record this pose" button calls; a running appliance picks the change up within a second."""
    pose = teaching_subject(poses)
    if pose is None:
        return 0
    library = PoseLibrary.load(path)
    library.add([Example.from_pose(pose, check_label(label), source, frame)])
    library.save()
    return library.labels()[label]


def check_taught(rules: list[RuleSettings], settings: PoseSettings) -> None:
    """Every pose a rule uses must have been taught: ConfigError naming the rule, the label and the file."""
    used = [(rule.name, label) for rule in rules for label in sorted(pose_labels(rule.when))]
    if not used:
        return
    taught = PoseLibrary.load(settings.file).labels()
    for rule, label in used:
        if label not in taught:
            have = ", ".join(taught) or "none yet"
            raise ConfigError(f"config: rule '{rule}' uses pose {label!r}, which is not taught in {settings.file} "
                              f"(taught: {have}; piposer teach {label} --source ...)")
