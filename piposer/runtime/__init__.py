"""The running appliance: the per-frame pipeline, the controller that answers commands, and the
supervisor that owns the process (signals, reloads, systemd)."""
