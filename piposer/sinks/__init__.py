"""Sinks take each frame's poses and do something with them (MQTT, GPIO, files, snapshots).

A sink never calls back into the app: it receives frames (`publish`), events from the bus (`on_event`),
stats (`on_stats`) and the controller's pause/resume, and announces its own news by emitting on the bus
it was given. `name` is the sink's stable key in stats (`stages_ms`), part of the MQTT contract.
"""

from __future__ import annotations

from ..events import Event
from ..types import Frame, Pose


class Sink:
    """Base class with do-nothing defaults: a sink overrides only what it cares about."""

    name: str = "sink"
    wants_frame: bool = False  # True while the sink needs the next frame even when paused (a pending snapshot)

    def publish(self, frame: Frame, poses: list[Pose]) -> None:
        """Called with every processed frame and its tracked poses."""

    def pause(self, reason: str) -> None:
        """Detection stopped: nobody is detected until `resume()` (outputs go safe)."""

    def resume(self) -> None:
        """Detection runs again."""

    def on_event(self, event: Event) -> None:
        """An event from the bus (a rule edge, a source outage, a command reply)."""

    def on_command(self, command) -> None:
        """A command the controller does not handle itself (e.g. `snapshot`)."""

    def on_stats(self, stats: dict) -> None:
        """The periodic loop statistics."""

    def state(self) -> dict | None:
        """What an operator should see about this sink in the stats (e.g. MQTT's connection), or None."""
        return None

    def healthy(self) -> bool:
        """False once a worker thread the sink depends on has died: the controller then exits cleanly, so
        systemd restarts the service."""
        return True

    def can_reconfigure(self, settings) -> bool:
        """Whether a reload can hand this sink new `settings` (its config slice) in place, without the
        close and rebuild that would reconnect or switch outputs."""
        return False

    def reconfigure(self, settings) -> None:
        """Take new settings in place (only called after `can_reconfigure(settings)` said yes)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release whatever the sink holds; outputs end in their safe state."""
