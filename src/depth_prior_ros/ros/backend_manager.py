"""The depth node's network: load and warm up before the first frame, degrade to the prior, recover.

Policy (see depth_node's docstring for the configuration side):
- A backend that cannot be built or warmed up (CUDA out of memory, a corrupt file, a missing optional
  package) is a runtime failure: the node logs one error, publishes the metric prior (the pipeline
  runs with no backend), reports ERROR on /diagnostics and retries in a background thread every
  ``retry_period`` seconds, so it recovers without a restart and the prior keeps flowing meanwhile.
- A backend that throws on a frame already falls back inside DepthPipeline (DepthResult.backend_error);
  here it only sets ERROR for that diagnostics period. Frames that succeed again clear it.
No ROS imports: the node passes log functions in.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from ..models.registry import create_backend
from .diagnostics import ERROR, WARN, DiagnosticReport

DEFAULT_WARMUP_SIZE = (640, 360)
RETRY_PERIOD_S = 10.0

LOADING, READY, FAILED, STOPPED = "loading", "ready", "failed", "stopped"


class BackendManager:
    def __init__(self, name: str, options: dict, log_info: Callable[[str], object],
                 log_error: Callable[[str], object], retry_period: float = RETRY_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.options = name, dict(options)
        self._info, self._error = log_info, log_error
        self.retry_period, self._clock = retry_period, clock
        self._lock = threading.Lock()
        self._backend = None
        self.state = LOADING
        self.load_error = ""
        self.load_attempts = 0
        self._last_attempt = -float("inf")
        self._loader: threading.Thread | None = None
        self.frame_failures = 0
        self._window_failures = 0
        self._last_frame_error = ""
        self._last_frame_ok = True

    # ------------------------------------------------------------------ loading
    @property
    def backend(self):
        """The loaded backend, or None without one (no network asked for, or not usable yet): the
        pipeline then publishes the prior."""
        return self._backend

    def load(self, warmup_size: Callable[[float], tuple[int, int] | None], wait_s: float = 5.0) -> bool:
        """One synchronous attempt: build, then warm up at the camera size (waiting up to ``wait_s``
        for the first camera_info when the backend has a network) or DEFAULT_WARMUP_SIZE."""
        with self._lock:
            if self.state == STOPPED:
                return False
            self.load_attempts += 1
            self._last_attempt = self._clock()
        t0 = time.perf_counter()
        try:
            backend = create_backend(self.name, **self.options)
            if backend is not None:  # None: no network (prior_only), nothing to warm up
                width, height = warmup_size(wait_s) or DEFAULT_WARMUP_SIZE
                backend.warmup(int(width), int(height))
        except Exception as exc:  # noqa: BLE001 - every load failure degrades to the prior (policy above)
            message = f"{type(exc).__name__}: {exc}"
            with self._lock:
                if self.state == STOPPED:
                    return False
                self.state, self.load_error = FAILED, message
            self._error(f"backend '{self.name}' failed to load ({message}); publishing the metric prior "
                        f"instead and retrying every {self.retry_period:g} s")
            return False
        with self._lock:
            if self.state == STOPPED:
                return False
            self._backend, self.state, self.load_error = backend, READY, ""
        self._info(f"backend '{self.name}' ready in {time.perf_counter() - t0:.2f} s: {_describe(backend)}")
        return True

    def maybe_retry(self, warmup_size: Callable[[float], tuple[int, int] | None]) -> bool:
        """Start a background load attempt when the backend failed and the retry period has passed."""
        with self._lock:
            due = (self.state == FAILED and self._clock() - self._last_attempt >= self.retry_period
                   and (self._loader is None or not self._loader.is_alive()))
            if not due:
                return False
            self._last_attempt = self._clock()  # no second thread while this one starts
            self._loader = threading.Thread(target=self.load, args=(warmup_size, 0.0),
                                            name="backend_loader", daemon=True)
            self._loader.start()
        return True

    def stop(self, timeout: float = 1.0) -> None:
        with self._lock:
            self.state = STOPPED
            loader = self._loader
        if loader is not None and loader.is_alive():
            loader.join(timeout)

    # ------------------------------------------------------------------ per frame
    def record_frame(self, backend_error: str | None) -> None:
        """After each processed frame: DepthResult.backend_error (None when the network worked)."""
        with self._lock:
            if backend_error:
                self.frame_failures += 1
                self._window_failures += 1
                self._last_frame_error = backend_error
                self._last_frame_ok = False
            else:
                self._last_frame_ok = True

    def report(self, report: DiagnosticReport) -> None:
        """Backend values and level for one diagnostics period (resets the period's failure count)."""
        with self._lock:
            failures, self._window_failures = self._window_failures, 0
            state, load_error, last_ok = self.state, self.load_error, self._last_frame_ok
            frame_error = self._last_frame_error
        report.add("backend", self.name)
        report.add("backend_state", state)
        report.add("backend_load_attempts", self.load_attempts)
        report.add("backend_frame_failures", self.frame_failures)
        report.add("backend_error", load_error or frame_error)
        if state == FAILED:
            report.escalate(ERROR, f"backend '{self.name}' is not loaded ({load_error}); publishing the prior")
        elif state == READY and (failures or not last_ok):
            report.escalate(ERROR, f"backend '{self.name}' failed on {failures} frame(s) ({frame_error}); "
                                   "they fell back to the prior")
        elif state == LOADING:
            report.escalate(WARN, f"backend '{self.name}' is loading")


def _describe(backend) -> str:
    if backend is None:
        return "no network, publishing the embodied scene prior"
    try:
        info = backend.describe()
    except Exception:  # noqa: BLE001 - a description is only for the log
        return getattr(backend, "name", "?")
    return ", ".join(f"{k}={v}" for k, v in info.items())
