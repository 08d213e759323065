"""COCO keypoint evaluation of an estimator on a folder of photos with COCO ground truth.

Needs pycocotools (a development dependency, not a runtime one). BlazePose poses are mapped to
COCO-17 first, so both families are scored alike.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np

from ..errors import PiposerError
from ..tracking import oks_matrix, sigmas
from ..runtime.pipeline import Pipeline
from ..sources import read_frame
from ..types import COCO17, Pose

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def oks(pred_xy: np.ndarray, gt_keypoints: np.ndarray, area: float) -> float:
    """Object keypoint similarity of (17, 2) predicted positions against COCO (17, 3) [x, y, v] ground truth."""
    seen = np.ones((1, len(pred_xy)), dtype=bool)
    labelled = (gt_keypoints[:, 2] > 0)[None]
    return float(oks_matrix(pred_xy[None], seen, np.zeros(1), gt_keypoints[None, :, :2], labelled,
                            np.array([area]), sigmas(COCO17))[0, 0])


def coco_result(pose: Pose, image_id: int) -> dict:
    """A COCO-17 pose in the COCO results format."""
    keypoints = np.column_stack((pose.xy(), pose.scores())).ravel()
    return {"image_id": image_id, "category_id": 1, "keypoints": [round(float(v), 2) for v in keypoints],
            "score": float(pose.score)}


def load_annotations(path: Path) -> dict:
    """A COCO person-keypoints file, checked for what evaluation reads (images with ids and file names,
    annotations, categories); anything else is one PiposerError naming the file."""
    try:
        meta = json.loads(path.read_bytes())
    except OSError as exc:
        raise PiposerError(f"cannot read annotations {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PiposerError(f"annotations {path} are not JSON: {exc}") from None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), list) for k in ("images", "annotations",
                                                                                     "categories")):
        raise PiposerError(f"annotations {path} are not a COCO keypoints file "
                           "(a JSON object with 'images', 'annotations' and 'categories' lists)")
    if not meta["images"] or not all(isinstance(im, dict) and isinstance(im.get("file_name"), str)
                                     and isinstance(im.get("id"), int) for im in meta["images"]):
        raise PiposerError(f"annotations {path}: 'images' must list objects with an integer 'id' and a 'file_name'")
    return meta


def predict(estimator, annotations: Path, to_coco=None, seconds: list[float] | None = None) -> list[dict]:
    """Run the estimator on every image of a COCO keypoint file; `to_coco` maps other layouts to COCO-17, and
    `seconds`, if given, collects each frame's time through the pipeline, on a second run of the frame (the
    photos differ in size, and a camera stream does not pay for re-sizing the model's input every frame)."""
    meta = load_annotations(annotations)
    results = []
    pipeline = Pipeline(estimator)
    for im in meta["images"]:
        frame = read_frame(annotations.parent / "images" / im["file_name"])
        if seconds is not None:
            pipeline.process(frame)
        started = time.perf_counter()
        poses = pipeline.process(frame)
        if seconds is not None:
            seconds.append(time.perf_counter() - started)
        for pose in poses:
            if pose.layout is not COCO17:
                pose = to_coco(pose)
            results.append(coco_result(pose, im["id"]))
    return results


def small_recall(annotations: Path, results: list[dict], max_height: float = 100, min_oks: float = 0.5) -> float:
    """The share of labelled people under `max_height` px tall (box height) that some pose in their image matches
    with OKS >= `min_oks` (COCO's AP50 criterion; NaN when there are none). Not one-to-one: it asks 'found?'."""
    meta = load_annotations(annotations)
    small = [a for a in meta["annotations"]
             if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd") and a["bbox"][3] < max_height]
    if not small:
        return float("nan")
    found = 0
    for person in small:
        truth = np.array(person["keypoints"], dtype=np.float64).reshape(-1, 3)
        found += any(oks(np.array(r["keypoints"]).reshape(-1, 3)[:, :2], truth, person["area"]) >= min_oks
                     for r in results if r["image_id"] == person["image_id"])
    return found / len(small)


def coco_eval(annotations: Path, results: list[dict]) -> dict[str, float]:
    """COCO keypoint AP/AR of `results` against `annotations`."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise PiposerError("piposer eval needs pycocotools: pip install pycocotools (it is in the dev extra)") from None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations))
        if not results:
            return dict.fromkeys(STAT_NAMES, 0.0)
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}
