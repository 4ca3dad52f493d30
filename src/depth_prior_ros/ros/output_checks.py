"""Results that are wrong without an error: counted and put on /diagnostics (no ROS imports).

The pipeline marks a frame's ``DepthResult.problem``: "empty_output" (the published depth has no
valid pixel, e.g. a card that calls a disparity network metric) is an ERROR; "no_agreement" (the
network's depth disagrees with the embodied prior, e.g. an indoor metric network outdoors) a WARN.
Counters are totals since start; the level covers the frames of the last diagnostics period.
"""
from __future__ import annotations

import threading
from collections import Counter

from ..pipeline import PROBLEMS
from .diagnostics import ERROR, WARN, DiagnosticReport

LEVELS = {"empty_output": ERROR, "no_agreement": WARN}
SENTENCES = {"empty_output": "the published depth had no valid pixel",
             "no_agreement": "the network's depth disagreed with the embodied prior"}


class OutputChecks:
    def __init__(self):
        self._lock = threading.Lock()
        self.totals: Counter = Counter()
        self._window: Counter = Counter()
        self._detail: dict[str, str] = {}

    def record(self, result) -> str | None:
        """After each processed frame; returns a log line for a problem frame (None otherwise)."""
        problem = result.problem
        if problem is None:
            return None
        fit = result.alignment
        detail = fit.message if problem == "no_agreement" and fit is not None else ""
        with self._lock:
            self.totals[problem] += 1
            self._window[problem] += 1
            self._detail[problem] = detail
        return f"{SENTENCES[problem]}" + (f" ({detail})" if detail else "")

    def report(self, report: DiagnosticReport) -> None:
        with self._lock:
            window, self._window = self._window, Counter()
            totals, details = dict(self.totals), dict(self._detail)
        for problem in PROBLEMS:
            report.add(f"frames_{problem}", totals.get(problem, 0))
        for problem in sorted(window, key=lambda p: -LEVELS[p]):
            detail = f" ({details[problem]})" if details.get(problem) else ""
            report.escalate(LEVELS[problem], f"{SENTENCES[problem]} on {window[problem]} frame(s) in the last "
                                             f"period{detail}")
