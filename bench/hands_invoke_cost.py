"""What one run of each hand model costs: MediaPipe's own graph nodes against piposer's runtime, CPU ms per call.

    taskset -c 0 .venv/bin/python bench/hands_invoke_cost.py [--runs 60]

MediaPipe side (mediapipe==0.10.14 in the bench venv): a two-node graph, ImageToTensorCalculator (a frame of
the panned photos to the model's square, as its hand graphs do) and InferenceCalculator with the XNNPACK
delegate, on each of the four .tflite files. piposer side: `piposer.backend.Model` with one thread, invoke only
(piposer's crop and input filling are timed by bench/hands_vs_mediapipe.py's stage split). Medians of the
process's CPU time per call (all threads) and wall time, the first 5 calls left out.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blazepose_vs_mediapipe import ensure_bench_venv, runtime  # noqa: E402
from hands_vs_mediapipe import panned  # noqa: E402

MODELS = {"palm-detection-lite": 192, "palm-detection-full": 192, "hands-lite": 224, "hands-full": 224}


def medians(cpu: list[float], wall: list[float]) -> str:
    return f"{1e3 * np.median(cpu[5:]):.2f} | {1e3 * np.median(wall[5:]):.2f}"


def worker(model: str, size: int, runs: int, frame: str) -> None:
    """Inside the bench venv: MediaPipe's image-to-tensor and inference nodes on one model."""
    import cv2
    import mediapipe as mp
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2

    config = text_format.Parse(f"""
        input_stream: "image" output_stream: "out"
        node {{ calculator: "ImageToTensorCalculator" input_stream: "IMAGE:image" output_stream: "TENSORS:in"
          options {{ [mediapipe.ImageToTensorCalculatorOptions.ext] {{ output_tensor_width: {size}
            output_tensor_height: {size} keep_aspect_ratio: true output_tensor_float_range {{ min: 0 max: 1 }} }} }} }}
        node {{ calculator: "InferenceCalculator" input_stream: "TENSORS:in" output_stream: "TENSORS:out"
          options {{ [mediapipe.InferenceCalculatorOptions.ext] {{ model_path: "{model}" delegate {{ xnnpack {{}} }} }} }} }}
        """, calculator_pb2.CalculatorGraphConfig())
    graph = mp.CalculatorGraph(graph_config=config)
    graph.observe_output_stream("out", lambda stream, packet: None)
    graph.start_run()
    rgb = cv2.cvtColor(cv2.imread(frame), cv2.COLOR_BGR2RGB)
    cpu, wall = [], []
    for i in range(runs):
        packet = mp.packet_creator.create_image_frame(image_format=mp.ImageFormat.SRGB, data=rgb).at(i)
        start, clock = time.perf_counter(), time.process_time()
        graph.add_packet_to_input_stream("image", packet)
        graph.wait_until_idle()
        cpu.append(time.process_time() - clock)
        wall.append(time.perf_counter() - start)
    graph.close()
    print(medians(cpu, wall))


def piposer_cost(path: Path, size: int, runs: int) -> str:
    from piposer.backend import Model

    model = Model(path, 1)
    values = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
    cpu, wall = [], []
    for _ in range(runs):
        model.input_buffer()[:] = values
        start, clock = time.perf_counter(), time.process_time()
        model.invoke()
        cpu.append(time.process_time() - clock)
        wall.append(time.perf_counter() - start)
    return medians(cpu, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    from piposer.modelstore import ModelStore

    python, store = ensure_bench_venv(), ModelStore.from_environment()
    frame = Path(panned(120)).read_text().split("\n")[70]
    print(f"piposer on {runtime()}, one thread\n")
    print("| model | MediaPipe CPU ms (image-to-tensor + inference) | wall | piposer CPU ms (invoke) | wall |")
    print("|---|---|---|---|---|")
    for name, size in MODELS.items():
        path = store.resolve(name).path.resolve()
        theirs = subprocess.run([str(python), __file__, "--worker", str(path), str(size), str(args.runs), frame],
                                check=True, capture_output=True, text=True).stdout.strip()
        print(f"| {name} | {theirs} | {piposer_cost(path, size, args.runs)} |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        model, size, runs, frame = sys.argv[2:6]
        worker(model, int(size), int(runs), frame)
    else:
        main()
