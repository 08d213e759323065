"""Running the installed `piposer` command in a subprocess, and what a user-facing error must look like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PIPOSER = Path(sys.executable).with_name("piposer")
RUNTIME_BANNER = "INFO: Created TensorFlow Lite XNNPACK delegate"  # the TFLite runtime's C++ code writes it to fd 2


def piposer(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(PIPOSER), *map(str, args)], capture_output=True, text=True, timeout=120, **kwargs)


def assert_one_line_error(result, *names):
    """Non-zero exit, no traceback, and exactly one stderr line naming one of `names`; never a crash by signal."""
    assert result.returncode > 0, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith(RUNTIME_BANNER)]
    assert len(lines) == 1, result.stderr
    assert any(str(name) in lines[0] for name in names), lines[0]
