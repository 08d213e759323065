"""Rule zones for the console: found in the rules (for drawing and the editor) and written back into the
config file with tomlkit, so the user's comments and layout survive an edit.

A zone is named after its rule and found by its `path` inside the rule (`when.zone`,
`when.all[1].zone`, ...). The editor's new zones become new `[[rules]]` entries whose whole condition
is the zone (optionally holding one output on while someone is in it); deleting a zone deletes such a
rule. A save is validated as `config check` would validate the file before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tomlkit

from ..errors import PiposerError
from ..rules.settings import RuleSettings
from ..rules.zones import zone_paths
from ..sinks.files import replace_text

STEP = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


@dataclass
class ZoneShape:
    """One zone as the console shows it: the rule it belongs to, where in the rule, and its outline."""

    rule: str
    path: str
    keypoint: str
    kind: str  # "rect" ([x0, y0, x1, y1]) or "polygon" ([[x, y], ...])
    points: list

    def outline(self) -> np.ndarray:
        """The zone's corners, normalized, as an (n, 2) array."""
        if self.kind == "rect":
            x0, y0, x1, y1 = self.points
            return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
        return np.array(self.points, dtype=float)

    def as_dict(self) -> dict:
        return asdict(self)


def zones_of(rules: list[RuleSettings]) -> list[ZoneShape]:
    """Every zone condition of every rule, however deeply nested."""
    return [ZoneShape(rule.name, path, zone.keypoint, "rect" if zone.rect is not None else "polygon",
                      zone.rect or zone.polygon)
            for rule in rules for path, zone in zone_paths(rule.when)]


def edited(text: str, zones: list[dict], deleted: list[dict]) -> str:
    """The config text with the editor's zones written in: each of `zones` is
    {rule, path, name, keypoint, kind, points} (rule/path null for a new zone, which may name an `output`
    to hold), each of `deleted` is {rule, path}. Raises PiposerError naming what cannot be done."""
    doc = tomlkit.parse(text)
    rules = doc.get("rules")
    if rules is None:
        rules = doc["rules"] = tomlkit.aot()
    by_name = {str(rule.get("name")): rule for rule in rules}
    for zone in deleted:
        rule = _rule(by_name, zone)
        if zone.get("path") != "when.zone":
            raise PiposerError(f"rule '{zone['rule']}': its zone is part of a larger condition; "
                               "delete it in the config file")
        rules.remove(rule)
    for zone in zones:
        shape = _shape(zone)
        if zone.get("rule") is None:
            rules.append(_new_rule(zone, shape))
            continue
        rule = _rule(by_name, zone)
        table = _walk(rule, str(zone.get("path", "")), zone["rule"])
        kind, points = next(iter(shape.items()))
        if table.get(kind) != points:  # untouched zones keep their text exactly
            table.pop("polygon" if kind == "rect" else "rect", None)
            table[kind] = points
        if zone.get("keypoint") and zone["keypoint"] != table.get("keypoint"):
            table["keypoint"] = str(zone["keypoint"])
        if zone.get("name") and zone["name"] != zone["rule"]:
            rule["name"] = str(zone["name"])
    return tomlkit.dumps(doc)


def _new_rule(zone: dict, shape: dict):
    """A `[[rules]]` table for a zone drawn in the console, written the way docs/rules.md shows rules."""
    rule = tomlkit.table()
    rule.trivia.indent = "\n"  # a blank line before its [[rules]] header, like the user's own
    rule["name"] = str(zone.get("name", ""))
    when = tomlkit.inline_table()
    inner = tomlkit.inline_table()
    inner.update({"keypoint": str(zone.get("keypoint") or "nose"), **shape})
    when["zone"] = inner
    rule["when"] = when
    if zone.get("output"):
        action = tomlkit.inline_table()
        action.update({"output": str(zone["output"]), "mode": "hold"})
        actions = tomlkit.array()
        actions.append(action)
        rule["actions"] = actions
    return rule


def _rule(by_name: dict, zone: dict):
    rule = by_name.get(str(zone.get("rule")))
    if rule is None:
        raise PiposerError(f"no rule named {zone.get('rule')!r} in the config file (was it changed meanwhile?)")
    return rule


def _walk(rule, path: str, name: str):
    """The table at `path` (e.g. `when.all[1].zone`) inside the rule's table."""
    node = rule
    for step in path.split("."):
        match = STEP.fullmatch(step)
        try:
            node = node[match[1]]
            if match[2] is not None:
                node = node[int(match[2])]
        except (TypeError, KeyError, IndexError):
            raise PiposerError(f"rule '{name}' has no zone at {path!r} in the config file") from None
    return node


def _shape(zone: dict) -> dict:
    """{"rect": [...]} or {"polygon": [[...], ...]}, rounded to 4 decimals (a tenth of a pixel at 1080p)."""
    kind, points = zone.get("kind"), zone.get("points")
    try:
        if kind == "rect":
            return {"rect": [round(float(v), 4) for v in points]}
        if kind == "polygon":
            return {"polygon": [[round(float(x), 4), round(float(y), 4)] for x, y in points]}
    except (TypeError, ValueError):
        pass
    raise PiposerError(f"zone {zone.get('name') or zone.get('rule')!r}: points must be numbers for a rect or polygon")


def save(path: Path, zones: list[dict], deleted: list[dict]) -> None:
    """Write the edit into the config file at `path`, atomically, keeping its mode and owner, once the result
    passes the same checks as `config check` (a ConfigError with its one line, file untouched, if not)."""
    from .. import config

    text = config.read_text(path)
    new = edited(text, zones, deleted)
    config.load(path, text=new)
    replace_text(path, new)

