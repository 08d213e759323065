"""Lazy re-exports name modules relative to their package, so a copy of piposer under another name (as the
side-by-side benches load an older revision, bench/revision.py) runs its own code, not this checkout's."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import ROOT


def test_a_renamed_copy_of_piposer_imports_its_own_modules(tmp_path):
    shutil.copytree(ROOT / "piposer", tmp_path / "piposer_then", ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    names = ("piposer_then.Tracker", "piposer_then.tracking.Tracker", "piposer_then.PoseNet",
             "piposer_then.sources.open_source", "piposer_then.rules.RulesEngine")
    script = ("import importlib\n"
              f"for name in {names!r}:\n"
              "    package, attribute = name.rsplit('.', 1)\n"
              "    print(getattr(importlib.import_module(package), attribute).__module__)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["piposer_then.tracking.tracker", "piposer_then.tracking.tracker",
                                  "piposer_then.estimators.posenet", "piposer_then.sources.feed",
                                  "piposer_then.rules.engine"]
