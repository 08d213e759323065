"""Bad config files through the real CLI: one line on stderr naming the file or key, never a traceback."""

from __future__ import annotations

import json

import pytest
from commandline import assert_one_line_error, piposer



def config(args, path):
    return piposer("config", *args, "--config", path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[mqtt]\nhost = "caf\xe9"\n')
    assert_one_line_error(config(["check"], path), str(path))


def test_nested_too_deeply(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 10000 + "]" * 10000 + "\n")
    assert_one_line_error(config(["check"], path), str(path))


@pytest.mark.parametrize("text, key", [
    ("[posenet]\nscore_threshold = 2.0", "posenet.score_threshold"),
    ("[posenet]\nmin_pose_score = -3", "posenet.min_pose_score"),
    ("[model]\nnum_threads = 100000", "model.num_threads"),
    ("[posenet]\ninput_size = [8001, 8001]", "posenet.input_size"),
    ("[posenet]\noutput_stride = 16\ninput_size = [250, 250]", "posenet.input_size"),
    ("[posenet]\noutput_stride = 16\nlong_side = 640", "posenet.long_side = 640: long_side-1 must be a multiple"),
    ("[posenet]\nlong_side = 481\ninput_size = [257, 353]", "posenet.long_side and posenet.input_size cannot both"),
    ('[movenet]\nrunning_mode = "stream"', "movenet.running_mode"),
    ('[blazepose]\nperson_detector = "yolo"', "blazepose.person_detector = 'yolo' is not allowed"),
    ("[blazepose]\ndetect_every = 0", "blazepose.detect_every"),
    ("[hands]\nnum_hands = 0", "hands.num_hands"),
    ("[hands]\nmin_hand_presence_confidence = 1.5", "hands.min_hand_presence_confidence"),
    ('[[osc]]\nport = 70000', "osc.port must be within 1..65535"),
    ('[[osc]]\nprefix = "piposer"', "osc.prefix must look like /name"),
    ('[[osc]]\nkeypoints = ["nose", "tail"]', "unknown keypoint 'tail'"),
    ('[[osc]]\nlayout = "columns"', "osc[0].layout = 'columns' is not allowed"),
    ("[web]\nport = 0", "web.port must be within 1..65535"),
    ("[mqtt]\nimage_width = 10", "mqtt.image_width must be within 64..4096"),
    ("[mqtt]\nimage_interval = -5", "mqtt.image_interval must be"),
    ('[web]\nallow_origins = ["laptop.local"]', "web.allow_origins: 'laptop.local' is not an origin"),
])
def test_bad_values_are_one_line_naming_the_key(tmp_path, text, key):
    path = tmp_path / "range.toml"
    path.write_text(text + "\n")
    assert_one_line_error(config(["check"], path), key)


def test_missing_password_file(tmp_path):
    missing = tmp_path / "no-such-password"
    path = tmp_path / "mqtt.toml"
    path.write_text(f'[mqtt]\nusername = "pi"\npassword_file = "{missing}"\n')
    result = config(["check"], path)
    assert_one_line_error(result, "mqtt.password_file")
    assert str(missing) in result.stderr


def test_show_masks_url_password(tmp_path):
    path = tmp_path / "stream.toml"
    path.write_text('[source]\nsource = "rtsp://admin:hunter2@192.168.1.20:554/stream1"\n')
    result = config(["show"], path)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert json.loads(result.stdout)["source"]["source"] == "rtsp://admin:***@192.168.1.20:554/stream1"
