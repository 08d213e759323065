"""Messages waiting to be handed to the MQTT client: bounded, never blocking the producer.

Three lanes, drained in this order: retained latest-value messages (availability, state, discovery),
which are coalesced by topic and never dropped; events and stats; then poses. The two streams
are bounded and drop their oldest message when full, counting each drop.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Message:
    """One MQTT publish; `created` is the monotonic capture time it stands for (for latency)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    created: float | None = None


class Outbox:
    def __init__(self, size: int):
        self.size = size
        self.drops = 0
        self._latest: dict[str, Message] = {}
        self._events: deque[Message] = deque()
        self._poses: deque[Message] = deque()
        self._ready = threading.Condition()

    def put_latest(self, message: Message) -> None:
        """Queue a retained message; an unsent older one on the same topic is replaced."""
        with self._ready:
            self._latest.pop(message.topic, None)
            self._latest[message.topic] = message
            self._ready.notify()

    def put_event(self, message: Message) -> None:
        self._put(self._events, message)

    def put_pose(self, message: Message) -> None:
        self._put(self._poses, message)

    def _put(self, lane: deque, message: Message) -> None:
        with self._ready:
            if len(lane) >= self.size:
                lane.popleft()
                self.drops += 1
            lane.append(message)
            self._ready.notify()

    def get(self, timeout: float, when: Callable[[], bool] = lambda: True) -> Message | None:
        """The next message by lane priority, waiting up to `timeout` seconds for one while `when()` holds.

        `when` is checked as messages arrive, so a consumer that can only send while connected
        leaves them queued (and subject to the size bound) rather than taking one it cannot send.
        """
        with self._ready:
            if not self._ready.wait_for(lambda: len(self) and when(), timeout):
                return None
            if self._latest:
                return self._latest.pop(next(iter(self._latest)))
            return (self._events or self._poses).popleft()

    def __len__(self) -> int:
        return len(self._latest) + len(self._events) + len(self._poses)
