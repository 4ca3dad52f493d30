"""Stopping a child node process the way ROS expects: SIGINT first, harder signals only if it hangs."""
from __future__ import annotations

import signal
import subprocess


def stop_gently(proc: subprocess.Popen, timeout: float = 10.0, grace: float = 3.0) -> int | None:
    """SIGINT (rclpy shuts down cleanly on it), then SIGTERM, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, grace), (signal.SIGKILL, grace)):
            try:
                proc.send_signal(sig)
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
    return proc.poll()
