"""Small validation helpers shared by the settings dataclasses; standard library only, so cheap to import."""

from __future__ import annotations

import math
import re


def check_range(where: str, value, lo=None, hi=None, *, lo_open: bool = False, hi_open: bool = False) -> None:
    """Raise ValueError("model.num_threads must be within 1..64, not 100000") unless lo <= value <= hi.

    Either bound may be None (unbounded); `lo_open`/`hi_open` exclude the bound itself. NaN, infinities
    outside the bounds, booleans and non-numbers are all rejected with the same kind of message.
    """
    if lo is not None and hi is not None:
        wanted = f"within {lo}..{hi}"
        excluded = [str(b) for b, is_open in ((lo, lo_open), (hi, hi_open)) if is_open]
        if excluded:
            wanted += f" (exclusive of {' and '.join(excluded)})"
    elif lo is not None:
        wanted = f"{'>' if lo_open else '>='} {lo}"
    elif hi is not None:
        wanted = f"{'<' if hi_open else '<='} {hi}"
    else:
        wanted = "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number {wanted}, not {value!r}")
    ok = not (isinstance(value, float) and math.isnan(value))
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if not ok:
        raise ValueError(f"{where} must be {wanted}, not {value}")


_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]*)@")


def mask_url(text):
    """`text` with the password of any URL in it (scheme://user:password@host) replaced by ***.

    Anything that is not a string (a camera index) is returned unchanged."""
    if not isinstance(text, str):
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)
