"""Timing an estimator on photos: medians of each stage it reports, and of the whole frame."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ..runtime.pipeline import Pipeline
from ..sources import read_frame


def time_estimator(estimator, images: list[Path], repeat: int) -> dict[str, float]:
    """Median seconds per stage (the estimator's `timings` keys) and in total through the pipeline (what every
    command runs), over `repeat` runs per image.

    Each image runs `repeat` times in a row after one warm-up, as a camera stream would (same input size).
    """
    samples: dict[str, list[float]] = {"total": []}
    pipeline = Pipeline(estimator)
    for path in images:
        frame = read_frame(path)
        pipeline.process(frame)
        for _ in range(repeat):
            t0 = time.perf_counter()
            pipeline.process(frame)
            samples["total"].append(time.perf_counter() - t0)
            for stage, seconds in estimator.timings.items():
                samples.setdefault(stage, []).append(seconds)
    return {stage: statistics.median(values) for stage, values in samples.items()}


def print_report(estimator, medians: dict[str, float], n_images: int, repeat: int) -> None:
    print(f"model {estimator.model_name}: {n_images} images x {repeat} runs, medians")
    for stage, seconds in medians.items():
        print(f"  {stage:12} {seconds * 1e3:8.3f} ms")
    if "invoke" in medians:
        print(f"  total/invoke {medians['total'] / medians['invoke']:8.3f}")
