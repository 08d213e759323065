"""Truncated and corrupted .tflite files: a one-line error naming the file, never a crash of the process.

The TFLite runtimes follow the flatbuffer's offsets unchecked, so before piposer verified the structure
(piposer/modelfile.py) these files ended `image`, `run` and `models verify` with SIGSEGV (rc 139).
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from commandline import assert_one_line_error, piposer
from conftest import DATA, MODELS

from piposer.errors import ModelError
from piposer.modelfile import check_file

POSENET = MODELS / "converted_from_tfjs" / "posenet_mobilenet_v1_075_stride16_float.tflite"
DETECTOR = MODELS / "pose_detection.tflite"
IMAGE = DATA / "coco_dev" / "images" / "000000000785.jpg"
UNHASHED = "multi_person_mobilenet_v1_075_float.tflite"  # a posenet source without a sha256 in the manifest


@pytest.mark.parametrize("path", sorted(MODELS.rglob("*.tflite")), ids=lambda p: p.name)
def test_every_real_model_passes(path):
    check_file(path)


def corrupt(source: Path, target: Path, how: str) -> Path:
    data = bytearray(source.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 3]
    elif how == "root offset":
        data[0:4] = (len(data) + 64).to_bytes(4, "little")
    elif how == "not tflite":
        data = bytearray(b"<html>404 Not Found</html>")
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("how", ["truncated", "root offset", "not tflite"])
def test_image_with_a_corrupt_model_is_one_line(tmp_path, how):
    bad = corrupt(POSENET, tmp_path / "bad.tflite", how)
    result = piposer("image", "--model", bad, "--out", tmp_path / "out", IMAGE, cwd=tmp_path)
    assert_one_line_error(result, f"model file {bad} is truncated or corrupt")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("command", ["verify", "list"])
def test_models_commands_with_a_corrupt_unhashed_file(tmp_path, command):
    models = tmp_path / "models"
    models.mkdir()
    bad = corrupt(POSENET, models / UNHASHED, "truncated")
    env = {"PATH": "/usr/bin:/bin", "PIPOSER_MODEL_DIR": str(models), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = piposer("models", command, "posenet", cwd=tmp_path, env=env)
    if command == "verify":
        assert_one_line_error(result, f"model file {bad} is truncated or corrupt")
        assert not (tmp_path / "cache").exists()  # nothing trusted
    else:
        assert result.returncode == 0, result.stderr
        assert f"unusable: model file {bad} is truncated or corrupt" in result.stdout


LOADER = """
import sys
from piposer.backend import Model
from piposer.errors import ModelError
for path in sys.argv[1:]:
    try:
        Model(path, num_threads=1)
    except ModelError:
        pass
print("survived", len(sys.argv) - 1)
"""


def test_seeded_fuzz_never_crashes_the_interpreter(tmp_path):
    """Byte mutations and truncations of a real model: each is refused, or it loads without a crash."""
    rng = random.Random(10)
    data = DETECTOR.read_bytes()
    files, refused = [], 0
    for number in range(60):
        mutated = bytearray(data[: rng.randrange(8, len(data))] if number % 4 == 0 else data)
        for _ in range(rng.choice((1, 4, 16))):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        path = tmp_path / f"m{number}.tflite"
        path.write_bytes(bytes(mutated))
        try:
            check_file(path)
        except ModelError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            refused += 1
        files.append(path)
    result = subprocess.run([sys.executable, "-c", LOADER, *map(str, files)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.split() == ["survived", "60"]
    assert refused >= 15  # every truncation at least, and the structural mutations


def test_a_truncated_known_file_is_refused_by_its_size(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    bad = corrupt(POSENET, models / POSENET.name, "truncated")
    env = {"PATH": "/usr/bin:/bin", "PIPOSER_MODEL_DIR": str(models), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = piposer("models", "verify", "posenet", cwd=tmp_path, env=env)
    assert_one_line_error(result, f"model file {bad} is {bad.stat().st_size} bytes, expected 5049508")
