"""Plain data passed between stages: frames in, poses out, and the keypoint layouts that name them."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import truediv

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # numpy is imported where arrays are made: the config loader needs these types, not numpy
    import numpy as np


@dataclass(frozen=True)
class Layout:
    """A keypoint topology: ordered keypoint names, the skeleton links drawn between them, and whether its
    poses are hands that carry a handedness."""

    name: str
    keypoints: tuple[str, ...]
    links: tuple[tuple[int, int], ...]
    handed: bool = False

    def index(self, name: str) -> int:
        return self.keypoints.index(name)


COCO17 = Layout(
    "coco17",
    (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    (
        (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
        (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
    ),
)

BLAZEPOSE33 = Layout(
    "blazepose33",
    (
        "nose", "left_eye_inner", "left_eye", "left_eye_outer",
        "right_eye_inner", "right_eye", "right_eye_outer", "left_ear", "right_ear",
        "mouth_left", "mouth_right", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_pinky", "right_pinky", "left_index", "right_index",
        "left_thumb", "right_thumb", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_heel", "right_heel", "left_foot_index", "right_foot_index",
    ),
    (
        (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
        (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
        (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
        (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
        (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
    ),
)

# MediaPipe's 21 hand landmarks: the wrist, then four joints per finger from the palm out.
HAND21 = Layout(
    "hand21",
    (
        "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
        "index_finger_mcp", "index_finger_pip", "index_finger_dip", "index_finger_tip",
        "middle_finger_mcp", "middle_finger_pip", "middle_finger_dip", "middle_finger_tip",
        "ring_finger_mcp", "ring_finger_pip", "ring_finger_dip", "ring_finger_tip",
        "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
    ),
    (
        (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
        (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (17, 18), (18, 19), (19, 20), (0, 17),
    ),
    handed=True,
)

# Output-only layouts: OpenPose's body layouts, for MGT-python and other OpenPose readers (piposer/layouts.py derives the points
# no model here predicts: the neck and chest from shoulders and hips; MPI's head top is never detected).
COCO18 = Layout(
    "coco18",
    (
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    (
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
        (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    ),
)

MPI15 = Layout(
    "mpi15",
    (
        "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "chest",
    ),
    (
        (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 14), (14, 8), (8, 9), (9, 10), (14, 11),
        (11, 12), (12, 13),
    ),
)

LAYOUTS = {layout.name: layout for layout in (COCO17, BLAZEPOSE33, HAND21)}  # what the models give


@dataclass(frozen=True)
class Frame:
    """One captured image (BGR, as OpenCV gives it) with its sequence number and capture time.

    `timestamp` is `time.monotonic()` at capture, used for latency; `wall_time` is `time.time()`.
    """

    image: np.ndarray
    index: int
    timestamp: float
    wall_time: float = 0.0

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(slots=True)
class Keypoint:
    """One body keypoint in source-image pixels (x, y) and normalized to [0, 1] (nx, ny).

    `detected` is False when the score is below the estimator's keypoint threshold: the
    position is still the model's best guess, but consumers should not act on it.
    BlazePose adds depth `z` (image-width units, hips at 0) and `visibility`.
    Treat keypoints as values: a pose keeps its keypoints' positions as arrays too (`Pose.points`, read
    once per keypoints tuple), so to move them give the pose a new tuple (or use `move_poses`), not new
    attribute values.
    """

    name: str
    x: float
    y: float
    nx: float
    ny: float
    score: float
    detected: bool
    z: float | None = None
    visibility: float | None = None


class Box(NamedTuple):
    """An axis-aligned box in source-image pixels (a named tuple: immutable, and cheap to make for
    every pose of every frame)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(slots=True)
class _Arrays:
    """A pose's keypoints as arrays: (K, 2) pixel positions and (K,) detected flags, the rest of what make_pose's
    keypoints are made of (per-keypoint lists), and the keypoints tuple the arrays agree with (None while the
    keypoints are still to be made from them). Replaced, never changed: shallow copies share it."""

    xy: np.ndarray
    seen: np.ndarray
    scores: list[float] | None
    z: list[float | None] | None
    visibility: list[float | None] | None
    of: tuple | None


class _Keypoints:
    """`Pose.keypoints`: a pose from make_pose makes its Keypoint objects on first read, from its arrays.
    The tracker smooths the arrays, so a frame's keypoints become objects once, after smoothing, and only
    when a stage or sink reads them."""

    def __get__(self, pose: Pose | None, owner=None) -> tuple[Keypoint, ...]:
        if pose is None:
            raise AttributeError("keypoints")  # so the dataclass field has no default
        if pose._keypoints is None:
            a, (width, height) = pose._arrays, pose.image_size
            xs, ys = a.xy.T.tolist()
            pose._keypoints = tuple(map(Keypoint, pose.layout.keypoints, xs, ys, map(truediv, xs, repeat(width)),
                                        map(truediv, ys, repeat(height)), a.scores, a.seen.tolist(), a.z, a.visibility))
            pose._arrays = _Arrays(a.xy, a.seen, a.scores, a.z, a.visibility, pose._keypoints)
        return pose._keypoints

    def __set__(self, pose: Pose, keypoints: tuple[Keypoint, ...] | None) -> None:
        pose._keypoints = keypoints  # None: make them from pose._arrays when read (make_pose)


@dataclass
class Pose:
    """One person (or, in the hand21 layout, one hand): keypoints in `layout` order, an instance score, a box,
    and a track id once tracked.

    `world` holds BlazePose's metric world landmarks (N x 3, metres, hip-centred) when available;
    `mask` its segmentation mask in image coordinates when asked for. `label` is the taught pose the
    classifier stage (rules/poses.py) recognised, None for none; `label_confidence` is None when no
    classifier ran. `image_size` is the source image's (width, height), for moving keypoints (`move_poses`).
    A hand has `handedness` "left" or "right" (as the model sees the image it was given) and its confidence,
    and, when a body model ran beside it ([hands] bodies), the `person` (that body's track id) and the
    `side` of the body wrist it is on; both None when it is on no body.
    """

    keypoints: tuple[Keypoint, ...] = _Keypoints()
    score: float
    box: Box
    layout: Layout = COCO17
    track_id: int | None = None
    world: np.ndarray | None = field(default=None, repr=False)
    mask: np.ndarray | None = field(default=None, repr=False)
    label: str | None = None
    label_confidence: float | None = None
    image_size: tuple[int, int] | None = field(default=None, repr=False)
    handedness: str | None = None
    handedness_score: float | None = None
    person: int | None = None
    side: str | None = None

    _arrays: _Arrays | None = field(default=None, init=False, repr=False, compare=False)
    _dict: tuple | None = field(default=None, init=False, repr=False, compare=False)  # `pose_to_dict`'s

    def __getitem__(self, name: str) -> Keypoint:
        return self.keypoints[self.layout.index(name)]

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The keypoints' (K, 2) pixel positions and (K,) detected flags as read-only arrays, for the tracker
        and sinks: make_pose's own, or read once from keypoints given by hand (again if they are replaced)."""
        a = self._arrays
        if a is None or a.of is not self._keypoints:
            import numpy as np

            kps = self._keypoints
            xy = np.array([(k.x, k.y) for k in kps], dtype=np.float64).reshape(-1, 2)
            a = self._arrays = _Arrays(xy, np.array([k.detected for k in kps], dtype=bool), None, None, None, kps)
        return a.xy, a.seen

    def xy(self) -> np.ndarray:
        """Keypoint pixel positions as a (K, 2) float array (a copy: yours to change)."""
        return self.points()[0].copy()

    def scores(self) -> np.ndarray:
        import numpy as np

        a = self._arrays
        if a is not None and a.of is self._keypoints and a.scores is not None:
            return np.array(a.scores, dtype=np.float64)
        return np.array([k.score for k in self.keypoints], dtype=np.float64)

    def detected(self) -> np.ndarray:
        return self.points()[1].copy()


def box_of(xs: list[float], ys: list[float], detected: list[bool]) -> Box:
    """The box around the detected keypoints at `xs`, `ys` (around all of them if none is detected); plain
    Python, as make_pose calls it for every pose of every frame."""
    span_x, span_y = ([v for v, d in zip(xs, detected) if d] or xs), ([v for v, d in zip(ys, detected) if d] or ys)
    return Box(min(span_x), min(span_y), max(span_x), max(span_y))


def keypoint_arrays(poses: list[Pose]) -> tuple[np.ndarray, np.ndarray]:
    """The (N, K, 2) pixel positions and (N, K) detected flags of `poses` (one layout)."""
    import numpy as np

    points = [p.points() for p in poses]
    return np.array([xy for xy, _ in points]), np.array([seen for _, seen in points])


def move_poses(poses: list[Pose], xy: np.ndarray, detected: np.ndarray) -> None:
    """Move the detected keypoints of one frame's `poses` to the (N, K, 2) pixel positions `xy` (the others
    must be where they are: `detected` are the poses' own flags). A pose whose keypoints are not made yet
    only takes the new arrays; made ones are moved in place. Boxes stay as the estimator made them."""
    import numpy as np

    made = [i for i, pose in enumerate(poses) if pose._keypoints is not None]
    for pose, moved in zip(poses, xy):
        pose.points()  # hand-given keypoints are read into arrays first
        a = pose._arrays  # a new one, not changed in place: a shallow copy of the pose may share it
        pose._arrays = _Arrays(moved, a.seen, a.scores, a.z, a.visibility, a.of)
    if not made:
        return
    (width, height), points = poses[0].image_size, xy[made][detected[made]]
    columns = np.empty((4, len(points)))  # x, y, nx, ny
    columns[:2] = points.T
    np.divide(columns[0], width, out=columns[2])  # by a Python number: an (x, y) tuple costs a conversion
    np.divide(columns[1], height, out=columns[3])
    columns = memoryview(columns).tolist()  # memoryview's tolist is 2x numpy's here
    keypoints = compress(chain.from_iterable(poses[i].keypoints for i in made), detected[made].ravel().tolist())
    for k, x, y, nx, ny in zip(keypoints, *columns):
        k.x = x
        k.y = y
        k.nx = nx
        k.ny = ny


def make_pose(
    layout: Layout,
    xy: np.ndarray,
    scores: np.ndarray,
    image_size: tuple[int, int],
    keypoint_threshold: float,
    score: float,
    z: np.ndarray | None = None,
    visibility: np.ndarray | None = None,
) -> Pose:
    """Build a Pose from (K, 2) pixel positions and (K,) scores in a `width, height` image.

    The box spans the detected keypoints (all keypoints if none is detected).
    """
    import numpy as np

    width, height = image_size
    xy = np.array(xy, dtype=np.float64)  # the pose's own copy: its keypoints are made from it when read
    seen = scores >= keypoint_threshold
    # Python floats from one conversion per column: this runs for every pose of every frame, right after the
    # model's invoke has pushed the interpreter out of the caches, where each numpy step costs ~20 us
    xs, ys = xy.T.tolist()
    detected = seen.tolist()
    none = [None] * len(xs)
    pose = Pose(keypoints=None, score=float(score), box=box_of(xs, ys, detected), layout=layout,
                image_size=(width, height))
    z, visibility = (none if v is None else v.tolist() for v in (z, visibility))
    pose._arrays = _Arrays(xy, seen, scores.tolist(), z, visibility, None)
    return pose


def pose_to_dict(pose: Pose, digits: int = 4) -> dict:
    """A pose as plain JSON-ready data: keypoints by name, pixels and normalized, not-detected made explicit.

    Made once per pose while its keypoints, id, label and body stay the same, since every sink sending a frame
    (MQTT, the WebSocket, files) asks for the same dicts: treat the result as read-only.
    """
    state = (digits, pose.track_id, pose.label, pose.label_confidence, pose.person, pose.side)
    made = pose._dict
    if made is not None and made[0] is pose.keypoints and made[1] == state:
        return made[2]
    keypoints = {}
    for k in pose.keypoints:
        entry = {
            "x": round(k.x, 1), "y": round(k.y, 1),
            "nx": round(k.nx, digits), "ny": round(k.ny, digits),
            "score": round(k.score, 3), "detected": k.detected,
        }
        if k.z is not None:
            entry["z"] = round(k.z, digits)
        if k.visibility is not None:
            entry["visibility"] = round(k.visibility, 3)
        keypoints[k.name] = entry
    b = pose.box
    out = {
        "score": round(pose.score, 3),
        "bbox": [round(b.x0, 1), round(b.y0, 1), round(b.x1, 1), round(b.y1, 1)],
        "layout": pose.layout.name,
        "keypoints": keypoints,
    }
    if pose.handedness is not None:
        out["handedness"] = pose.handedness
        out["handedness_score"] = round(pose.handedness_score, 3)
        out["person"], out["side"] = pose.person, pose.side
    if pose.label_confidence is not None:
        out["label"] = pose.label
        out["label_confidence"] = pose.label_confidence
    if pose.track_id is not None:
        out = {"id": pose.track_id, **out}
    pose._dict = (pose.keypoints, state, out)
    return out
