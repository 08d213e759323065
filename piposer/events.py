"""Typed events and the one small bus they travel on: rule edges, source outages and command replies.

Whoever has news (the rules, the source, the controller answering a command) emits an `Event`; the bus
logs it and hands it to every subscriber (each sink's `on_event`), so nothing needs to know who listens.
Delivery is synchronous on the emitting thread; a subscriber that raises is logged and skipped.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable


class EventKind(StrEnum):
    """Every event piposer emits; the values are the `kind` field of the MQTT `events` topic."""

    RULE = "rule"
    RULE_ERROR = "rule_error"
    POSE = "pose"
    SOURCE_LOST = "source_lost"
    SOURCE_RESTORED = "source_restored"
    PAUSED = "paused"
    RESUMED = "resumed"
    THRESHOLDS = "thresholds"
    SNAPSHOT = "snapshot"
    RELOADING = "reloading"
    COMMAND_FAILED = "command_failed"


class Edge(StrEnum):
    """Which way a rule changed: it became true (rising) or stopped being true (falling)."""

    RISING = "rising"
    FALLING = "falling"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    fields: dict = field(default_factory=dict)


class EventBus:
    """Fan events out to subscribers (callables taking an Event); safe to emit from any thread."""

    def __init__(self, log: Callable[[str], None] = print):
        self.log = log
        self._subscribers: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[Event], None]) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def emit(self, kind: EventKind | str, **fields) -> Event:
        event = Event(EventKind(kind), fields)
        self.log(f"event {event.kind}: {json.dumps(fields, default=str)}")
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception as exc:  # one broken listener must not silence the others
                self.log(f"event {event.kind} not delivered to {getattr(callback, '__qualname__', callback)}: "
                         f"{type(exc).__name__}: {exc}")
        return event
