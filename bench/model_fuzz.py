"""Corrupted .tflite files against piposer's flatbuffer check: how many it refuses, and that none of the
rest crashes the interpreter.

    .venv/bin/python bench/model_fuzz.py [--cases 300] [--seed 1] [--no-check] [model.tflite ...]

For each model (default: every .tflite under $PIPOSER_SHARED/models), `--cases` corrupted copies:
a quarter truncated at a random length, the rest with 1, 4 or 16 random bytes overwritten. Each goes
through `piposer.modelfile.check_file`; every copy it lets through is loaded and allocated by the real
TFLite runtime in a child process, one at a time, and a child killed by a signal counts as a crash.
Also prints how long the check takes on each intact model (median of 5). `--no-check` loads every copy
(the loader skips the check too), which shows what the check prevents.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from piposer.errors import ModelError
from piposer.modelfile import check_file

LOAD = """import sys
from piposer import backend
if sys.argv[2] == "unchecked":
    backend.check_file = lambda path: None
try:
    backend.Model(sys.argv[1], num_threads=1)
except Exception:
    pass
"""


def corrupted(data: bytes, rng: random.Random, number: int) -> bytes:
    mutated = bytearray(data[: rng.randrange(8, len(data))] if number % 4 == 0 else data)
    for _ in range(rng.choice((1, 4, 16))):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    return bytes(mutated)


def check_ms(path: Path) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        check_file(path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-check", action="store_true", help="load every corrupted copy, unchecked")
    args = parser.parse_args()
    shared = Path(os.environ.get("PIPOSER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    models = args.models or sorted((shared / "models").rglob("*.tflite"))
    rng = random.Random(args.seed)
    totals = [0, 0, 0, 0]
    print(f"{'model':58} {'MB':>5} {'check ms':>8} {'cases':>5} {'refused':>7} {'loaded':>6} {'crashed':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            data, refused, loaded, crashed = model.read_bytes(), 0, 0, 0
            for number in range(args.cases):
                path = Path(tmp) / "m.tflite"
                path.write_bytes(corrupted(data, rng, number))
                try:
                    if not args.no_check:
                        check_file(path)
                except ModelError:
                    refused += 1
                    continue
                mode = "unchecked" if args.no_check else "checked"
                result = subprocess.run([sys.executable, "-c", LOAD, str(path), mode], capture_output=True)
                crashed += result.returncode < 0
                loaded += result.returncode >= 0
            print(f"{model.name:58} {len(data) / 1e6:5.1f} {check_ms(model):8.1f} {args.cases:5} {refused:7} "
                  f"{loaded:6} {crashed:7}")
            totals = [t + n for t, n in zip(totals, (args.cases, refused, loaded, crashed))]
    print(f"{'all':58} {'':5} {'':8} {totals[0]:5} {totals[1]:7} {totals[2]:6} {totals[3]:7}")


if __name__ == "__main__":
    main()
