"""Debounced counts: a people count that changes only once the new value has held for a while.

Detections flicker: a person missed for two frames, a passer-by found for one. Published as is, a
count in a room of two changes dozens of times a minute and each change is a state write in Home
Assistant's history and a chance to fire an automation. `HeldCount` publishes a new value only after
it has held for `hold` seconds; the first person after an empty spell is published at once (presence
should feel instant), the last one leaving only after the hold (absence should be sure).
"""

from __future__ import annotations


class HeldCount:
    """The debounced value of a count fed every frame with `update(count, now)`."""

    def __init__(self, hold: float):
        self.hold = hold
        self.value: int | None = None
        self._pending: int | None = None
        self._since = 0.0

    def reset(self) -> None:
        """Forget the history: the next count is published as it is."""
        self.value = self._pending = None

    def update(self, count: int, now: float) -> int:
        """Feed the raw `count` seen at `now` (seconds); returns the count to publish."""
        if self.value is None or count == self.value or (self.value == 0 and count > 0) or self.hold <= 0:
            self.value, self._pending = count, None
        elif count != self._pending:
            self._pending, self._since = count, now
        elif now - self._since >= self.hold:
            self.value, self._pending = count, None
        return self.value
