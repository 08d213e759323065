"""Lazy re-exports: a package names what it offers without importing it until first use (PEP 562)."""

from __future__ import annotations

import importlib


def exports(package: str, names: dict[str, str]):
    """`__getattr__` and `__dir__` for `package` that import `names[name]` (a module path relative to the
    package, so a copy of piposer under another name imports its own modules) on first use."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted([*namespace, *names])

    return __getattr__, __dir__
