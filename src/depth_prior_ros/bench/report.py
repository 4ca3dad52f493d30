"""benchmarks/RESULTS.md: machine, numbers in ms and as ratios to a same-run baseline, targets met or not."""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

from . import core as C
from .models import BackendResults
from .core import CoreResults
from .transport import TransportResults

# Targets of issues 2 and 6 (issue 16's ratio targets: core.RATIO_TARGETS).
GROUND_MAX_RATIO = 10.0
ALIGN_MAX_MS = 3.0
NODE_OVERHEAD_MAX_MS = 20.0
THROUGHPUT_MIN_RATIO = 0.8
P99_MAX_RATIO = 2.0


@dataclass
class Target:
    name: str
    value: str
    limit: str
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return "n/a" if self.met is None else ("met" if self.met else "**missed**")


def fmt_ms(ms: float) -> str:
    if ms is None or not math.isfinite(ms):
        return "n/a"
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_ratio(r: float) -> str:
    if r is None or not math.isfinite(r):
        return "n/a"
    return f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


# ----------------------------------------------------------------------------- targets
def core_targets(core: CoreResults | None, size: str = "1600x900") -> list[Target]:
    if core is None or size not in core.baseline:
        return []
    out = []
    g = core.get(C.GROUND, size)
    if g:
        out.append(Target(f"ground_depth recompute at {size} <= {GROUND_MAX_RATIO:g}x float32 copy",
                          f"{fmt_ms(g.ms)} ms = {fmt_ratio(g.ratio)}", f"<= {GROUND_MAX_RATIO:g}x",
                          g.ratio <= GROUND_MAX_RATIO))
    for stage in (C.ALIGN_FIT, C.ALIGN_APPLY):
        a = core.get(stage, size)
        if a:
            out.append(Target(f"{stage} at {size} <= {ALIGN_MAX_MS:g} ms", f"{fmt_ms(a.ms)} ms",
                              f"<= {ALIGN_MAX_MS:g} ms", a.ms <= ALIGN_MAX_MS))
    fit, both = core.get(C.ALIGN_FIT, size), core.get(C.REFINE_FUSE, size)
    if fit and both:
        ratio = both.ms / fit.ms
        out.append(Target(f"{C.REFINE_FUSE} at {size} <= {C.REFINE_FUSE_MAX_FIT_RATIO:g}x {C.ALIGN_FIT}",
                          f"{fmt_ms(both.ms)} / {fmt_ms(fit.ms)} ms = {fmt_ratio(ratio)}",
                          f"<= {C.REFINE_FUSE_MAX_FIT_RATIO:g}x", ratio <= C.REFINE_FUSE_MAX_FIT_RATIO))
    for stage, limit in C.RATIO_TARGETS:
        row = core.get(stage, size)
        if row:
            out.append(Target(f"{stage} at {size} <= {limit:g}x float32 copy", f"{fmt_ms(row.ms)} ms = "
                              f"{fmt_ratio(row.ratio)}", f"<= {limit:g}x", row.ratio <= limit))
    return out


def transport_targets(tr: TransportResults | None) -> list[Target]:
    if tr is None:
        return []
    out = []
    for rate in sorted({r.rate_hz for r in tr.runs if r.rate_hz}, key=float):
        echo, node = tr.find("echo", rate), tr.find("depth_node", rate)
        if not echo or not node:
            continue
        thr = node.stats.throughput_hz / echo.stats.throughput_hz if echo.stats.throughput_hz else float("nan")
        p99 = node.stats.latency(99) / echo.stats.latency(99) if echo.stats.latencies_ms else float("nan")
        out.append(Target(f"depth_node throughput >= {THROUGHPUT_MIN_RATIO:g}x echo at {rate:g} Hz",
                          f"{node.stats.throughput_hz:.1f} / {echo.stats.throughput_hz:.1f} Hz = {fmt_ratio(thr)}",
                          f">= {THROUGHPUT_MIN_RATIO:g}x", bool(math.isfinite(thr) and thr >= THROUGHPUT_MIN_RATIO)))
        out.append(Target(f"depth_node latency p99 <= {P99_MAX_RATIO:g}x echo at {rate:g} Hz",
                          f"{fmt_ms(node.stats.latency(99))} / {fmt_ms(echo.stats.latency(99))} ms = {fmt_ratio(p99)}",
                          f"<= {P99_MAX_RATIO:g}x", bool(math.isfinite(p99) and p99 <= P99_MAX_RATIO)))
    overhead = node_overhead(tr)
    if overhead is not None:
        value, _how = overhead
        out.append(Target(f"depth_node whole overhead per frame, no network, <= {NODE_OVERHEAD_MAX_MS:g} ms",
                          f"{fmt_ms(value)} ms", f"<= {NODE_OVERHEAD_MAX_MS:g} ms", value <= NODE_OVERHEAD_MAX_MS))
    return out


def node_overhead(tr: TransportResults) -> tuple[float, str] | None:
    """The node's own time per frame at the lowest rate (no queueing): callback receipt -> published,
    from its /diagnostics ``latency_node_ms`` minus the time the frame waited in the mailbox."""
    runs = [r for r in tr.runs if r.target == "depth_node" and r.node_stages_ms.get("node") is not None]
    if not runs:
        return None
    run = min(runs, key=lambda r: r.rate_hz or math.inf)
    stages = run.node_stages_ms
    value = stages["node"] - stages.get("queue", 0.0)
    return value, f"at {run.rate_hz:g} Hz"


# ----------------------------------------------------------------------------- sections
def machine_section(info: dict[str, str]) -> list[str]:
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    return lines + [""]


def core_section(core: CoreResults, size: str = "1600x900") -> list[str]:
    base = core.baseline[size]
    lines = [f"## 1. Core stages at {size} (issue 2)", "",
             f"Baseline: copying one float32 {size} frame (`depth.copy()`) = **{fmt_ms(base.median)} ms** "
             f"(median of {base.n}). Stage times are medians; `x copy` = stage / baseline.", "",
             "| stage | ms | x copy | samples | note |", "|---|---:|---:|---:|---|"]
    for stage in C.FULL_STAGES:
        row = core.get(stage, size)
        if row:
            lines.append(f"| {stage} | {fmt_ms(row.ms)} | {fmt_ratio(row.ratio)} | {row.timing.n} | {row.note} |")
    return lines + [""]


def stages_section(core: CoreResults) -> list[str]:
    sizes = list(core.baseline)
    lines = ["## 2. Pipeline stages per resolution", "",
             "Median ms (x float32 frame copy of the same size, measured in the same run).", "",
             "| stage | " + " | ".join(sizes) + " |", "|---|" + "---:|" * len(sizes)]
    lines.append("| baseline: float32 frame copy | " + " | ".join(f"{fmt_ms(core.baseline[s].median)}" for s in sizes)
                 + " |")
    for stage in C.SIZE_STAGES:
        cells = []
        for s in sizes:
            row = core.get(stage, s)
            cells.append(f"{fmt_ms(row.ms)} ({fmt_ratio(row.ratio)})" if row else "")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    cams = C.presets()
    lines += ["", "Cameras: " + "; ".join(f"{s}: {cams[s].name}, {cams[s].height_m} m, pitch {cams[s].pitch_deg} deg"
                                          for s in sizes if s in cams) + ".", ""]
    return lines


def transport_section(tr: TransportResults) -> list[str]:
    lines = [f"## 3. ROS transport floor vs depth_node (prior_only), {tr.width}x{tr.height} {tr.encoding}", "",
             "One publisher process sends `image` + `camera_info` at a fixed rate, stamping each header with "
             "the send time; the same process receives the output (`depth`) and computes latency = receive "
             "time - stamp. The *echo* node republishes each image unchanged (the floor: DDS + rclpy + one "
             "Python callback); depth_node runs its defaults (prior_mode scene, inpaint on, publishes `depth` + "
             "`depth/camera_info`; optional outputs only when subscribed). Subscriptions use the node's "
             f"default sensor-data QoS (best effort, depth 1). Transport: {tr.dds}.", "",
             "| target | rate | sent | outputs | throughput Hz | x echo | p50 ms | p99 ms | p99 x echo | RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in tr.runs:
        echo = tr.find("echo", run.rate_hz)
        s = run.stats
        thr_ratio = s.throughput_hz / echo.stats.throughput_hz if echo and echo.stats.throughput_hz else float("nan")
        p99_ratio = s.latency(99) / echo.stats.latency(99) if echo and echo.stats.latencies_ms else float("nan")
        rate = f"{run.rate_hz:g} Hz" if run.rate_hz else "max"
        lines.append(f"| {run.target} | {rate} | {s.sent} | {s.outputs} | {s.throughput_hz:.1f} | "
                     f"{fmt_ratio(thr_ratio)} | {fmt_ms(s.latency(50))} | {fmt_ms(s.latency(99))} | "
                     f"{fmt_ratio(p99_ratio)} | {fmt_ms(run.rss_mb) if run.rss_mb else 'n/a'} |")
    problems = [(r.target, p) for r in tr.runs for p in r.problems]
    if problems:
        lines += ["", "Node log problems: " + "; ".join(f"{t}: `{p[:120]}`" for t, p in problems[:5])]
    node_runs = [r for r in tr.runs if r.node_stages_ms]
    if node_runs:
        stages = sorted({k for r in node_runs for k in r.node_stages_ms},
                        key=lambda k: ("queue", "convert_pose", "prior", "network", "align", "publish",
                                       "node").index(k) if k in ("queue", "convert_pose", "prior", "network",
                                                                 "align", "publish", "node") else 99)
        lines += ["", "### Where depth_node spends a frame", "",
                  "Means of the node's own `/diagnostics` latencies over the run (`node` = callback receipt to "
                  "last publish; `queue` = wait in the one-slot mailbox; `align` includes the prior-only range "
                  "clip; `publish` = building and publishing the messages).", "",
                  "| run | " + " | ".join(stages) + " | frames received / processed / dropped |",
                  "|---|" + "---:|" * len(stages) + "---|"]
        for r in node_runs:
            rate = f"{r.rate_hz:g} Hz" if r.rate_hz else "max"
            c = r.node_counts
            counts = " / ".join(c.get(k, "?") for k in ("frames_received", "frames_processed", "frames_dropped"))
            lines.append(f"| {r.target} @ {rate} | " + " | ".join(fmt_ms(r.node_stages_ms.get(k, float('nan')))
                                                               for k in stages) + f" | {counts} |")
        overhead = node_overhead(tr)
        if overhead:
            value, how = overhead
            echo_lo = [r for r in tr.runs if r.target == "echo"]
            node_lo = [r for r in tr.runs if r.target == "depth_node"]
            extra = ""
            if echo_lo and node_lo:
                e, n = min(echo_lo, key=lambda r: r.rate_hz or 1e9), min(node_lo, key=lambda r: r.rate_hz or 1e9)
                extra = (f"; seen from outside, depth_node's p50 latency exceeds the echo's by "
                         f"{fmt_ms(n.stats.latency(50) - e.stats.latency(50))} ms at {n.rate_hz:g} Hz")
            lines += ["", f"Node overhead per frame without a network ({how}): **{fmt_ms(value)} ms** "
                          f"(`node` - `queue`){extra}."]
    return lines + [""]


def backends_section(b: BackendResults) -> list[str]:
    lines = [f"## 4. Depth networks on {b.device}: PyTorch vs ONNX Runtime", "",
             "Same architecture (published sizes, random weights: speed does not depend on the values), same "
             "camera image, same run. `network` = `backend.predict` (resize, normalise, network, resize back); "
             "`pipeline` = `DepthPipeline.process` with that backend (prior + network + alignment + filter). "
             f"Source: `{b.source}`.", "",
             "| model | runtime | camera | network input | network ms | x PyTorch | pipeline ms | note |",
             "|---|---|---|---|---:|---:|---:|---|"]
    for row in b.rows:
        ref = b.reference(row)
        ratio = row.ms / ref.ms if ref and ref.ms else float("nan")
        pipe = fmt_ms(row.pipeline.median) if row.pipeline else "n/a"
        lines.append(f"| {row.model} | {row.runtime} | {row.camera} | {row.network_input} | {fmt_ms(row.ms)} | "
                     f"{fmt_ratio(ratio)} | {pipe} | {row.note} |")
    if b.skipped:
        lines += [""] + [f"- not measured: {s}" for s in b.skipped]
    lines += ["", "On a GPU machine: `bash benchmarks/run_gpu.sh` (see benchmarks/README.md).", ""]
    return lines


def targets_section(targets: list[Target]) -> list[str]:
    lines = ["## Targets", "", "| target | measured | limit | verdict |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.value} | {t.limit} | {t.verdict} |" for t in targets]
    return lines + [""]


def render(info: dict[str, str], core: CoreResults | None, transport: TransportResults | None,
           backends: BackendResults | None, quick: bool, command: str, notes: list[str] | None = None,
           sections: tuple[str, ...] = ("core", "stages", "transport", "backends")) -> str:
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    mode = "quick (smoke run: short timings, tiny model; not for quoting)" if quick else "full"
    lines = ["# depth_prior_ros benchmark results", "",
             f"Written by `{command}` on {now}, mode: {mode}. Rerun with `make bench` or `depth-prior bench` "
             "(GPU: `bash benchmarks/run_gpu.sh`). Every time is a median in milliseconds, next to a ratio "
             "to a baseline measured in the same run on the same machine, because shared machines are noisy: "
             "compare ratios across machines, not milliseconds. What each number measures: "
             "`benchmarks/README.md`.", ""]
    targets = core_targets(core) + transport_targets(transport)
    if targets:
        lines += targets_section(targets)
    lines += machine_section(info)
    if core is not None and "core" in sections and "1600x900" in core.baseline:
        lines += core_section(core)
    if core is not None and "stages" in sections:
        lines += stages_section(core)
    if transport is not None:
        lines += transport_section(transport)
    if backends is not None:
        lines += backends_section(backends)
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines).rstrip() + "\n"
