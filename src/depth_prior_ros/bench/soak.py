"""Soak: many frames through a live depth_node at its maximum rate, then check it is still healthy.

Checks (each failure is one sentence in ``SoakResult.failures``):
- resident memory (VmRSS from /proc) grows by at most ``max_growth_mb`` after the warm-up;
- its log has no traceback / ERROR / FATAL line and no frame was dropped for "error";
- exact accounting from the node's own /diagnostics counters: received = processed + dropped, and
  received <= sent with the node's shipped best-effort input (the middleware may shed frames too),
  received == sent with ``reliability="reliable"`` (``--reliable``);
- it shuts down cleanly on SIGINT.
The publisher (the calling process) and the node (its own process) run at once; the publisher is
faster than the node, so the node is always busy and drops (load-sheds) the frames it cannot take.
The node runs its shipped defaults (best-effort input, use_tf with the mount latched on /tf_static by
the publisher, bench.driver.Driver) unless ``reliability`` asks for reliable input.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..processes import NodeProcess, NodeProcessError, log_problems, unique_namespace
from .driver import Driver
from .transport import DEPTH_NODE_MODULE, depth_node_params

DEFAULT_MAX_GROWTH_MB = 50.0


@dataclass
class SoakResult:
    frames: int
    width: int
    height: int
    rate_hz: float | None
    duration_s: float = 0.0
    sent: int = 0
    received: int | None = None
    processed: int | None = None
    dropped: dict = field(default_factory=dict)
    pending: int | None = None
    outputs_seen: int = 0                     # depth images the publisher process got back
    rss_samples: list = field(default_factory=list)  # (frames sent, VmRSS MiB)
    rss_warm_mb: float | None = None
    rss_end_mb: float | None = None
    rss_max_after_warm_mb: float | None = None
    exit_code: int | None = None
    problems: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    warmup_frames: int = 0
    max_growth_mb: float = DEFAULT_MAX_GROWTH_MB
    log_path: str = ""
    qos_depth: int = 50
    reliability: str = "best_effort"

    @property
    def reliable(self) -> bool:
        return self.reliability == "reliable"

    @property
    def growth_mb(self) -> float | None:
        if self.rss_warm_mb is None or self.rss_max_after_warm_mb is None:
            return None
        return self.rss_max_after_warm_mb - self.rss_warm_mb

    @property
    def slope_mb_per_1000(self) -> float | None:
        """Least-squares trend of VmRSS over the second half of the run, MB per 1000 frames: a slow leak
        shows here long before it crosses the growth limit."""
        half = [(n, m) for n, m in self.rss_samples if n >= self.sent / 2]
        if len(half) < 3 or half[-1][0] == half[0][0]:
            return None
        n, m = (np.array(v, dtype=np.float64) for v in zip(*half))
        return float(np.polyfit(n, m, 1)[0] * 1000.0)

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))

    @property
    def ok(self) -> bool:
        return not self.failures


def _counts(values: dict) -> tuple[int, int, dict, int]:
    dropped = {k[len("dropped_"):]: int(v) for k, v in values.items() if k.startswith("dropped_")}
    return int(values["frames_received"]), int(values["frames_processed"]), dropped, int(values["frames_pending"])


def run_soak(frames: int = 5000, width: int = 1600, height: int = 900, rate_hz: float | None = 60.0,
             warmup_frames: int | None = None, max_growth_mb: float = DEFAULT_MAX_GROWTH_MB,
             log_dir: Path | None = None, node_params: dict | None = None, settle_timeout: float = 20.0,
             qos_depth: int = 50, progress=None, reliability: str = "best_effort") -> SoakResult:
    """Publish ``frames`` image + camera_info pairs (reliable, keep-last ``qos_depth``) at ``rate_hz``
    (None: back to back) into a fresh depth_node (prior_only; its shipped best-effort input, or reliable
    keep-last ``qos_depth`` with ``reliability="reliable"``), then check it."""
    from .core import presets

    if frames < 2:
        raise ValueError("a soak needs at least 2 frames")
    warmup = warmup_frames if warmup_frames is not None else min(max(frames // 10, 300), 500, frames // 2)
    if not 0 < warmup < frames:
        raise ValueError(f"warm-up ({warmup} frames) must be shorter than the soak ({frames} frames)")
    camera = presets()["1600x900"].camera.resized(width, height)
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="depth_prior_soak_"))
    if reliability not in ("best_effort", "reliable"):
        raise ValueError(f"reliability must be best_effort or reliable, not {reliability!r}")
    params = (depth_node_params(reliability="reliable", qos_depth=qos_depth, diagnostics_period=0.5)
              if reliability == "reliable" else depth_node_params(diagnostics_period=0.5))
    params.update(node_params or {})
    result = SoakResult(frames, width, height, rate_hz, warmup_frames=warmup, max_growth_mb=max_growth_mb,
                        log_path=str(log_dir / "depth_node_soak.log"), qos_depth=qos_depth,
                        reliability=reliability)
    namespace = unique_namespace("soak")
    node = NodeProcess(DEPTH_NODE_MODULE, params, log_dir / "depth_node_soak.log", namespace=namespace)
    bar = progress(total=frames, desc="soak frames", unit="frame") if progress else None
    try:
        with node, Driver(width, height, camera.K, namespace=namespace, reliable=True, qos_depth=qos_depth,
                          diagnostics_name=f"{namespace}/depth_node:") as driver:
            driver.wait_connected([driver.pub_image, driver.pub_info], ["depth"], 30.0)
            if not driver.send_until_counted(driver.pub_info, driver.info_msg, timeout=30.0):
                raise NodeProcessError("depth_node did not report a camera_info within 30 s")
            sample_every = max(1, frames // 200)

            def watch(sent: int) -> bool:
                if (sent - 1) % sample_every == 0 or sent == warmup:
                    rss = node.rss_mb()
                    if rss is not None:
                        result.rss_samples.append((sent, rss))
                        if sent == warmup:
                            result.rss_warm_mb = rss
                alive = node.alive()
                if not alive:
                    result.failures.append(f"depth_node exited with code {node.proc.returncode} after {sent} frames")
                return alive

            start = time.perf_counter()
            # No per-frame wait_for_all_acked: for small messages the acknowledgement only comes with the
            # writer's periodic heartbeat (3 s). Reliable keep-last ``qos_depth`` on both sides instead: a
            # frame is lost only if the node's executor falls ``qos_depth`` frames behind, which is exactly
            # what sent == received checks.
            result.sent = driver.pace(rate_hz, frames=frames, progress=bar, after_each=watch)
            result.duration_s = time.perf_counter() - start
            final = _settle(driver, result.sent, settle_timeout, exact=result.reliable)
            result.rss_end_mb = node.rss_mb()
            if result.rss_end_mb is not None:
                result.rss_samples.append((result.sent, result.rss_end_mb))
            result.outputs_seen = driver.outputs_total
            if final is not None:
                result.received, result.processed, result.dropped, result.pending = _counts(final)
    finally:
        if bar:
            bar.close()
        result.exit_code = node.stop()
    after = [rss for n, rss in result.rss_samples if n >= warmup]
    result.rss_max_after_warm_mb = max(after) if after else None
    result.problems = log_problems(node.output())
    _judge(result)
    return result


def _settle(driver: Driver, sent: int, timeout: float, exact: bool = True) -> dict | None:
    """Latest node counters once it has received every frame (``exact``: reliable input), or, best effort,
    its received count stopped changing over two reports, and it has nothing pending (or the timeout)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        values = driver.last_diagnostics()
        if values and "frames_received" in values:
            previous, last = last, values
            stable = (previous is not None and previous["_time"] < values["_time"]
                      and previous["frames_received"] == values["frames_received"])
            if (int(values["frames_received"]) >= sent or (not exact and stable)) \
                    and int(values["frames_pending"]) == 0:
                # One more report, so the counters are not from the middle of a frame.
                seen = values["_time"]
                while time.monotonic() < deadline:
                    newer = driver.last_diagnostics()
                    if newer and newer["_time"] > seen:
                        return newer
                    time.sleep(0.05)
                return values
        time.sleep(0.05)
    return last


def _judge(r: SoakResult) -> None:
    if r.received is None:
        r.failures.append("no /diagnostics counters arrived from depth_node, so frames cannot be accounted for")
    else:
        if r.pending:
            r.failures.append(f"{r.pending} frame(s) still pending after the soak ended")
        if r.received != r.processed + r.dropped_total + (r.pending or 0):
            r.failures.append(f"accounting broken: received {r.received} != processed {r.processed} + dropped "
                              f"{r.dropped_total} + pending {r.pending}")
        if r.reliable and r.received != r.sent:
            r.failures.append(f"publisher sent {r.sent} frames over reliable QoS but the node received {r.received}")
        if r.received > r.sent:
            r.failures.append(f"the node counted {r.received} frames but the publisher sent only {r.sent}")
        if r.dropped.get("error", 0):
            r.failures.append(f"{r.dropped['error']} frame(s) raised an unexpected exception in the node")
        other = {k: v for k, v in r.dropped.items() if v and k not in ("busy", "error")}
        if other:
            listed = ", ".join(f"{k} ({v})" for k, v in sorted(other.items()))
            r.failures.append(f"valid frames were dropped for {listed}")
        if r.processed == 0:
            r.failures.append("the node processed no frame")
    growth = r.growth_mb
    if growth is None:
        r.failures.append("resident memory could not be sampled after the warm-up")
    elif growth > r.max_growth_mb:
        r.failures.append(f"resident memory grew {growth:.1f} MB after the warm-up (limit {r.max_growth_mb:.0f} MB)")
    if r.problems:
        r.failures.append(f"the node log has {len(r.problems)} error line(s), first: {r.problems[0][:160]}")
    if r.exit_code not in (0, None):
        r.failures.append(f"depth_node exited with code {r.exit_code} on SIGINT (expected 0)")


def soak_markdown(r: SoakResult) -> str:
    """A commit-ready markdown section for one soak run."""
    verdict = "PASS" if r.ok else "FAIL"
    rate = f"{r.rate_hz:g} Hz" if r.rate_hz else "back to back"
    lines = [f"## Soak: {r.sent} frames {r.width}x{r.height} rgb8 through depth_node (prior_only): {verdict}", "",
             f"Publisher: reliable QoS, keep-last {r.qos_depth}, {rate}; node subscription "
             + (f"reliable, keep-last {r.qos_depth}; " if r.reliable else
                "as shipped (best effort, keep-last 1; the camera mount from /tf_static); ")
             + 
             f"warm-up {r.warmup_frames} frames; {r.duration_s:.1f} s.", "",
             "| check | value | limit |", "|---|---|---|"]
    growth = r.growth_mb
    lines.append(f"| VmRSS after warm-up / at end / max after warm-up | "
                 f"{_mb(r.rss_warm_mb)} / {_mb(r.rss_end_mb)} / {_mb(r.rss_max_after_warm_mb)} | |")
    lines.append(f"| VmRSS growth after warm-up | {_mb(growth)} | <= {r.max_growth_mb:.0f} MB |")
    slope = r.slope_mb_per_1000
    lines.append(f"| VmRSS trend over the second half | "
                 f"{'n/a' if slope is None else f'{slope:+.2f} MB per 1000 frames'} | (informative) |")
    if r.rss_samples:
        picks = [r.rss_samples[round(i * (len(r.rss_samples) - 1) / 9)] for i in range(10)]
        series = ", ".join(f"{n}: {m:.0f}" for n, m in dict(picks).items())
        lines.append(f"| VmRSS along the run (frames sent: MB) | {series} | (informative) |")
    lines.append(f"| sent by publisher / received by node | {r.sent} / {r.received} | "
                 f"{'equal (reliable)' if r.reliable else 'received <= sent (best effort sheds load too)'} |")
    drops = ", ".join(f"{k} {v}" for k, v in sorted(r.dropped.items()) if v) or "none"
    lines.append(f"| received = processed + dropped (+ pending) | {r.received} = {r.processed} + "
                 f"{r.dropped_total} (+ {r.pending}) | exact |")
    lines.append(f"| drops by reason | {drops} | only busy (load shedding) |")
    lines.append(f"| depth images back at the publisher | {r.outputs_seen} | <= processed |")
    lines.append(f"| error lines in node log | {len(r.problems)} | 0 |")
    lines.append(f"| exit code after SIGINT | {r.exit_code} | 0 |")
    if r.failures:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in r.failures]
    lines.append("")
    return "\n".join(lines)


def _mb(value) -> str:
    return "n/a" if value is None else f"{value:.1f} MB"
