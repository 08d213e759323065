"""Rule evaluation cost per frame: 20 rules of every kind on 5 people (target: under 0.2 ms).

    .venv/bin/python bench/rules_bench.py [--frames 2000] [--rounds 5] [--people 5]

Times `RulesEngine.update` alone and `RulesSink.publish` (engine plus driving gpiozero mock pins)
on the same pre-built frames of jittered synthetic poses, with 5 tracked people (so per-person
rules keep 5 states each). The poses are made before timing: only rule evaluation is measured.
Prints the median per-frame wall time and CPU time (`time.thread_time`, which other processes on a
busy machine do not inflate) of each round, and the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: E402

from piposer.sinks.gpio import RulesSink  # noqa: E402
from piposer.rules import RulesEngine  # noqa: E402
from piposer.types import Frame  # noqa: E402
from rules_poses import STANDING, Clock, pose, sections  # noqa: E402

# 20 rules covering every condition, scope and combination; 5 of them drive outputs.
RULES = """
[[rules]]
name = "present"
when = { people = 1 }
activate_after = 1.0
release_after = 5.0
actions = [ { output = "relay", mode = "hold" } ]
[[rules]]
name = "crowd"
when = { people = 4 }
[[rules]]
name = "left_up"
per_person = true
when = { above = { a = "left_wrist", b = "nose" } }
actions = [ { output = "led", mode = "hold" } ]
[[rules]]
name = "right_up"
per_person = true
when = { above = { a = "right_wrist", b = "nose", margin = 0.1 } }
[[rules]]
name = "both_up"
when = { all = [ { above = { a = "left_wrist", b = "left_shoulder" } }, { above = { a = "right_wrist", b = "right_shoulder" } } ] }
[[rules]]
name = "any_up"
when = { any = [ { above = { a = "left_wrist", b = "left_shoulder" } }, { above = { a = "right_wrist", b = "right_shoulder" } } ] }
[[rules]]
name = "dimmer"
when = { above = { a = "right_wrist", b = "right_elbow" } }
actions = [ { output = "pwm", mode = "follow", follow = { keypoint = "right_wrist", low = 0.8, high = 0.1, smooth = 0.2 } } ]
[[rules]]
name = "hands_together"
when = { near = { a = "left_wrist", b = "right_wrist", within = 0.3 } }
cooldown = 2.0
actions = [ { output = "buzzer", mode = "pulse", seconds = 0.05 } ]
[[rules]]
name = "head_touch"
per_person = true
when = { near = { a = "right_wrist", b = "nose", within = 0.4 } }
[[rules]]
name = "arms_down"
when = { all = [ { below = { a = "left_wrist", b = "left_elbow" } }, { below = { a = "right_wrist", b = "right_elbow" } } ] }
[[rules]]
name = "crossed"
when = { left_of = { a = "left_wrist", b = "right_wrist" } }
[[rules]]
name = "pointing_right"
when = { right_of = { a = "right_wrist", b = "right_shoulder", margin = 0.8 } }
[[rules]]
name = "zone_a"
when = { zone = { keypoint = "left_ankle", rect = [0.0, 0.5, 0.33, 1.0] } }
release_after = 1.0
[[rules]]
name = "zone_b"
when = { zone = { keypoint = "left_ankle", polygon = [[0.33, 0.5], [0.67, 0.5], [0.7, 1.0], [0.3, 1.0]] } }
release_after = 1.0
[[rules]]
name = "zone_c"
per_person = true
when = { zone = { keypoint = "nose", polygon = [[0.67, 0.0], [1.0, 0.0], [1.0, 1.0], [0.7, 1.0], [0.8, 0.5]] } }
[[rules]]
name = "held_up"
per_person = true
when = { held = { seconds = 2.0, when = { above = { a = "left_wrist", b = "nose" } } } }
[[rules]]
name = "waiting"
per_person = true
when = { all = [ { zone = { keypoint = "nose", rect = [0.3, 0.0, 0.7, 1.0] } }, { held = { seconds = 1.0, when = { below = { a = "left_wrist", b = "left_hip" } } } } ] }
activate_after = 0.5
[[rules]]
name = "clap_in_zone"
when = { all = [ { near = { a = "left_wrist", b = "right_wrist", within = 0.3 } }, { zone = { keypoint = "nose", rect = [0.0, 0.0, 0.5, 1.0] } } ] }
actions = [ { output = "buzzer", mode = "pulse", seconds = 0.05 } ]
[[rules]]
name = "pose_y"
when = { any = [ { all = [ { above = { a = "left_wrist", b = "nose" } }, { left_of = { a = "right_wrist", b = "nose" } } ] }, { people = 5 } ] }
[[rules]]
name = "confident_up"
min_score = 0.8
when = { above = { a = "left_wrist", b = "left_eye" } }
"""

OUTPUTS = """
[[outputs]]
name = "relay"
kind = "relay"
pin = 17
[[outputs]]
name = "led"
kind = "led"
pin = 27
[[outputs]]
name = "pwm"
kind = "pwm"
pin = 18
[[outputs]]
name = "buzzer"
kind = "buzzer"
pin = 22
"""


def make_frames(count: int, people: int, seed: int = 0) -> list[list]:
    """People spread across the image, arms moving, keypoints jittering; some keypoints lost."""
    rng = np.random.default_rng(seed)
    names = list(STANDING)
    frames = []
    for i in range(count):
        poses = []
        for p in range(people):
            x_shift = (p - (people - 1) / 2) * 0.16 + 0.02 * np.sin(i / 20 + p)
            points = {n: (x + x_shift + rng.normal(0, 0.005), y + rng.normal(0, 0.005)) for n, (x, y) in STANDING.items()}
            if (i // 15 + p) % 3 == 0:  # this person has the left hand up for a while
                points["left_wrist"] = (points["left_wrist"][0], 0.05 + 0.1 * rng.random())
            missing = tuple(rng.choice(names, size=2, replace=False)) if rng.random() < 0.3 else ()
            poses.append(pose(points, track_id=p + 1, missing=missing, score=float(0.6 + 0.35 * rng.random())))
        frames.append(poses)
    return frames


def time_per_frame(step, frames, clock: Clock, dt: float) -> tuple[float, float]:
    """Median wall time and median CPU time (this thread's) per frame."""
    wall, cpu = [], []
    for poses in frames:
        w0, c0 = time.perf_counter(), time.thread_time()
        step(poses)
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
        clock.advance(dt)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--people", type=int, default=5)
    args = parser.parse_args()

    rules = sections(tomllib.loads(RULES))[0]
    outputs = sections(tomllib.loads(OUTPUTS))[1]
    frames = make_frames(args.frames, args.people)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 0, 0.0)
    print(f"{len(rules)} rules, {args.people} people, {args.frames} frames x {args.rounds} rounds")

    results: dict[str, list[tuple[float, float]]] = {"engine": [], "sink": []}
    edges = 0
    for r in range(args.rounds):
        clock = Clock()
        engine = RulesEngine(rules, clock)
        results["engine"].append(time_per_frame(engine.update, frames, clock, 1 / 30))
        clock = Clock()
        events = []
        sink = RulesSink(rules, outputs, pin_factory=MockFactory(pin_class=MockPWMPin), clock=clock,
                         on_event=lambda kind, **f: events.append(kind))
        results["sink"].append(time_per_frame(lambda poses: sink.publish(frame, poses), frames, clock, 1 / 30))
        sink.close()
        edges = len(events)
        assert not engine.errors and "rule_error" not in events
        print(f"round {r}: " + ", ".join(
            f"{name} {v[-1][0] * 1e3:.3f} ms wall / {v[-1][1] * 1e3:.3f} ms CPU" for name, v in results.items()))
    print(f"edges per run: {edges}")
    for name, values in results.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        print(f"median {name}: {wall * 1e3:.3f} ms/frame wall, {cpu * 1e3:.3f} ms/frame CPU")


if __name__ == "__main__":
    main()
