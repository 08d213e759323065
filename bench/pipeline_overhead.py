"""What the Pipeline adds per frame over the bare estimator, on the same frames, interleaved.

For each coco_dev photo, after a warm-up, runs alternately (a) `estimator.estimate(frame)` alone and
(b) `Pipeline.process(frame)` with what `piposer run` adds: the tracker, a rules sink with one zone rule
on gpiozero mock pins, and an idle snapshot sink. Reports medians of invoke, (a), (b) and the ratios.
Usage: python bench/pipeline_overhead.py [--model posenet] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PIPOSER_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("PIPOSER_MODEL_DIR", f"{SHARED}/models{os.pathsep}{SHARED}/models/converted_from_tfjs")

from gpiozero.pins.mock import MockFactory  # noqa: E402

from piposer import PoseNet, Tracker  # noqa: E402
from piposer.rules import ActionSettings, Condition, OutputSettings, RuleSettings, Zone  # noqa: E402
from piposer.runtime.pipeline import Pipeline  # noqa: E402
from piposer.sinks.gpio import RulesSink  # noqa: E402
from piposer.sinks.snapshot import SnapshotSink  # noqa: E402
from piposer.sources import read_frame  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="posenet")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    data = SHARED / "data" / "coco_dev"
    paths = [data / "images" / im["file_name"] for im in json.loads((data / "person_keypoints.json").read_text())["images"]]
    rule = RuleSettings(name="anyone", actions=[ActionSettings(output="lamp")],
                        when=Condition(zone=Zone(keypoint="nose", rect=[0.0, 0.0, 1.0, 1.0])))
    net = PoseNet(args.model)
    with tempfile.TemporaryDirectory() as snaps:
        sinks = [RulesSink([rule], [OutputSettings(name="lamp", kind="led", pin=17)], pin_factory=MockFactory()),
                 SnapshotSink(Path(snaps), emit=lambda *a, **k: None)]
        pipeline = Pipeline(net, tracker=Tracker(), sinks=sinks, min_pose_score=0.3)
        invoke, bare, full = [], [], []
        for path in paths:
            frame = read_frame(path)
            pipeline.process(frame)
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                net.estimate(frame)
                t1 = time.perf_counter()
                invoke.append(net.timings["invoke"])
                pipeline.process(frame)
                t2 = time.perf_counter()
                bare.append(t1 - t0)
                full.append(t2 - t1)
        pipeline.close()
    m = {name: statistics.median(v) * 1e3 for name, v in (("invoke", invoke), ("bare", bare), ("pipeline", full))}
    print(f"model {net.model_name}: {len(paths)} photos x {args.repeat}, interleaved, medians")
    for name, ms in m.items():
        print(f"  {name:9} {ms:8.3f} ms")
    print(f"  bare/invoke     {m['bare'] / m['invoke']:.3f}")
    print(f"  pipeline/invoke {m['pipeline'] / m['invoke']:.3f}")
    print(f"  pipeline - bare {m['pipeline'] - m['bare']:.3f} ms per frame (tracker, rules, snapshot sink)")


if __name__ == "__main__":
    main()
