"""What the nodes report on /diagnostics: rates, per-stage latency, frame accounting, fit, pose, backend.

The report is built from plain Python values (testable without ROS); ``to_diagnostic_array`` turns
reports into a diagnostic_msgs/DiagnosticArray. Every value is a string, as the message demands;
counters are integers so tools (and the tests) can check received = processed + dropped + pending.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .worker import FrameCounts, FrameMailbox

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


class LatencyStats:
    """Per-stage latencies in ms over the current reporting window: mean and max per stage."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sum: dict[str, float] = {}
        self._max: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self._last: dict[str, tuple[float, float]] = {}

    def add(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            for stage, ms in timings_ms.items():
                self._sum[stage] = self._sum.get(stage, 0.0) + ms
                self._max[stage] = max(self._max.get(stage, 0.0), ms)
                self._count[stage] = self._count.get(stage, 0) + 1

    def window(self) -> dict[str, tuple[float, float]]:
        """stage -> (mean, max) since the previous call; stages without new samples keep their last values."""
        with self._lock:
            for stage, n in self._count.items():
                self._last[stage] = (self._sum[stage] / n, self._max[stage])
            self._sum, self._max, self._count = {}, {}, {}
            return dict(self._last)


@dataclass
class DiagnosticReport:
    """One DiagnosticStatus: level, one-line message, ordered (key, value) strings."""

    level: int = OK
    message: str = "ok"
    values: list = field(default_factory=list)

    def add(self, key: str, value) -> None:
        if isinstance(value, float):
            value = "nan" if math.isnan(value) else f"{value:.4g}"
        self.values.append((key, str(value)))

    def escalate(self, level: int, message: str) -> None:
        """Raise the level; the message of the worst level wins (first one at that level)."""
        if level > self.level:
            self.level, self.message = level, message

    def lead(self, level: int, message: str) -> None:
        """Raise to at least ``level`` and put ``message`` first: a cause that explains the other
        symptoms (a camera_info that never came explains the frames dropped for it)."""
        if level >= self.level:
            self.message = message if level > self.level or not self.message else f"{message}; {self.message}"
            self.level = level

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)


def add_frame_values(report: DiagnosticReport, counts: FrameCounts, previous: FrameCounts | None,
                     elapsed_s: float, reasons: tuple[str, ...] = ()) -> None:
    """Counters, rates over the window, and a WARN for drops that are not just load shedding."""
    report.add("frames_received", counts.received)
    report.add("frames_processed", counts.processed)
    report.add("frames_dropped", counts.dropped_total)
    report.add("frames_pending", counts.pending)
    for reason in sorted(set(reasons) | set(counts.dropped)):
        report.add(f"dropped_{reason}", counts.dropped.get(reason, 0))
    prev_received = previous.received if previous else 0
    prev_processed = previous.processed if previous else 0
    prev_dropped = previous.dropped if previous else {}
    dt = max(elapsed_s, 1e-6)
    report.add("rate_in_hz", (counts.received - prev_received) / dt)
    report.add("rate_out_hz", (counts.processed - prev_processed) / dt)
    bad = {r: n - prev_dropped.get(r, 0) for r, n in counts.dropped.items() if r not in ("busy", "shutdown")}
    bad = {r: n for r, n in bad.items() if n > 0}
    if bad:
        listed = ", ".join(f"{n} {r}" for r, n in sorted(bad.items()))
        report.escalate(WARN, f"dropped frames in the last {elapsed_s:.1f} s: {listed}")
    elif counts.received == prev_received:
        report.escalate(WARN, f"no frames received in the last {elapsed_s:.1f} s")


def add_latency_values(report: DiagnosticReport, window: dict[str, tuple[float, float]]) -> None:
    for stage, (mean, worst) in sorted(window.items()):
        report.add(f"latency_{stage}_ms", mean)
        report.add(f"latency_{stage}_max_ms", worst)


def to_diagnostic_array(statuses: list[tuple[str, str, DiagnosticReport]], stamp=None):
    """[(name, hardware_id, report)] -> diagnostic_msgs/DiagnosticArray."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    array = DiagnosticArray()
    if stamp is not None:
        array.header.stamp = stamp
    for name, hardware_id, report in statuses:
        status = DiagnosticStatus()
        status.level = bytes([report.level])  # the field is a ROS `byte`
        status.name = name
        status.message = report.message
        status.hardware_id = hardware_id
        status.values = [KeyValue(key=k, value=v) for k, v in report.values]
        array.status.append(status)
    return array


def status_values(status) -> dict[str, str]:
    """DiagnosticStatus -> {key: value} (for tools and tests)."""
    return {kv.key: kv.value for kv in status.values}


def fully_qualified_name(node) -> str:
    return f"{node.get_namespace().rstrip('/')}/{node.get_name()}"


class DiagnosticsPublisher:
    """One DiagnosticStatus for a node on /diagnostics every ``period`` s (executor thread): frame
    accounting and rates, per-stage latency, then what ``add_values(report)`` adds for this node.
    ``hardware_id`` is the camera's frame_id once a frame was processed."""

    def __init__(self, node, status_name: str, period: float, mailbox: FrameMailbox, latency: LatencyStats,
                 drop_reasons: tuple[str, ...], add_values: Callable[[DiagnosticReport], None]):
        from diagnostic_msgs.msg import DiagnosticArray

        from .qos import diagnostics_qos

        self._node, self._mailbox, self._latency = node, mailbox, latency
        self._name = f"{fully_qualified_name(node)}: {status_name}"
        self._drop_reasons, self._add_values = drop_reasons, add_values
        self._previous: tuple[FrameCounts | None, float] = (None, time.monotonic())
        self.hardware_id = ""
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", diagnostics_qos())
        node.create_timer(period, self.publish)

    def publish(self) -> None:
        previous, since = self._previous
        now, counts = time.monotonic(), self._mailbox.counts()
        self._previous = (counts, now)
        report = DiagnosticReport(OK, "")
        add_frame_values(report, counts, previous, now - since, self._drop_reasons)
        add_latency_values(report, self._latency.window())
        self._add_values(report)
        if report.level == OK:
            report.message = f"publishing at {report.as_dict().get('rate_out_hz', '0')} Hz"
        status = (self._name, self.hardware_id or fully_qualified_name(self._node), report)
        self._pub.publish(to_diagnostic_array([status], self._node.get_clock().now().to_msg()))
