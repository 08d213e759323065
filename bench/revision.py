"""An older revision's `piposer` importable beside this checkout's, for benches that run both in one process.

The revision's package is extracted with `git archive` into a folder under another name (piposer's imports
inside the package are relative, so it runs as it did then).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD = "piposer_then"


def extract(revision: str, folder: Path) -> None:
    """The revision's piposer package (and the model manifest it links to) as `OLD` in `folder`, importable."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "piposer", "models/manifest.toml"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "piposer").rename(folder / OLD)
    sys.path.insert(0, str(folder))
