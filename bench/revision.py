"""An older revision's `piposer` importable beside this checkout's, for benches that run both in one process.

The revision's package is extracted with `git archive` into a folder under another name (piposer's imports
inside the package are relative, so it runs as it did then).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def sides(revision: str | None) -> Iterator[list[str]]:
    """The packages to run side by side: this checkout's `piposer`, and `revision`'s as `OLD` when one is given
    (extracted into a temporary folder while the block runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        if revision:
            extract(revision, Path(tmp))
        yield ["piposer", OLD] if revision else ["piposer"]
