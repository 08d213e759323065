"""Pose rules: settings (`[[rules]]`), the engine that turns poses into edges, and the wiring to outputs.

Re-exported here for library users (the engine on first use): `from piposer.rules import RuleSettings, RulesEngine`.
"""

from ..lazy import exports
from .settings import ActionSettings, Condition, FollowSettings, Held, Near, Relation, RuleSettings, Zone
from .wiring import ButtonSettings, OutputSettings, check_wiring

_EXPORTS = {name: ".engine" for name in (
    "Follower", "Outcome", "RulesEngine", "Scene", "Trigger", "body_sizes")}

__all__ = [
    *sorted(_EXPORTS), "ActionSettings", "ButtonSettings", "Condition", "FollowSettings", "Held", "Near", "OutputSettings", "Relation",
    "RuleSettings", "Zone", "check_wiring",
]
__getattr__, __dir__ = exports(__name__, _EXPORTS)
