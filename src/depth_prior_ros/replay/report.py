"""The replay report: report.md, metrics.json, frames.csv, plots, preview PNGs.

Every file is written to a temporary name beside its target and moved into place with os.replace,
so a crash or Ctrl-C leaves each file either complete (old or new) or absent, never half-written.
``checkpoint()`` rewrites the cheap files while a replay runs, so even a killed run leaves a report
of what it finished; ``finalise()`` adds the plots.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..pipeline import PROBLEMS
from .embodied import EmbodiedTable
from .metrics import METRIC_NAMES, DistanceErrors, FrameScore, mean_metrics
from .stability import stability, stability_markdown

ALL = "all"  # the condition name of the overall aggregate
LOST_TO_DAMAGE = "bag_damage"  # FrameRecord.source of a frame a damaged bag record took away

TABLE_COLUMNS = (("abs_rel", "AbsRel", "{:.4f}"), ("sq_rel", "SqRel", "{:.4f}"), ("rmse", "RMSE", "{:.3f}"),
                 ("rmse_log", "RMSElog", "{:.4f}"), ("silog", "SILog", "{:.2f}"), ("delta1", "d1", "{:.4f}"),
                 ("delta2", "d2", "{:.4f}"), ("delta3", "d3", "{:.4f}"), ("coverage", "cov", "{:.3f}"),
                 ("frames", "n", "{:d}"))


# --------------------------------------------------------------------------- atomic writes
def _file_mode() -> int:
    """0o666 minus the process umask: what open() would give (mkstemp alone makes files 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    return write_text_atomic(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")


def write_png_atomic(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """uint8 RGB (H, W, 3) or grey (H, W) -> PNG file."""
    import cv2

    img = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    return write_bytes_atomic(path, buf.tobytes())


def save_figure_atomic(fig, path: str | os.PathLike) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return write_bytes_atomic(path, buf.getvalue())


def _jsonable(obj):
    """NaN/inf -> None, numpy scalars -> Python (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


# --------------------------------------------------------------------------- records
@dataclass
class FrameRecord:
    """One backend's result on one frame. scores: (region, scaling) -> FrameScore (empty without GT)."""

    backend: str
    bag: str
    condition: str
    index: int
    stamp_ns: int
    scores: dict = field(default_factory=dict)
    processing_ms: float | None = None   # pipeline time (offline) / not known (live)
    latency_ms: float | None = None      # publish -> depth received (live)
    dropped: bool = False
    source: str = ""                     # "network" | "prior" | "" (live) | LOST_TO_DAMAGE
    error: str | None = None
    gt_source: str = ""
    gt_agreement: float | None = None    # AbsRel of LiDAR GT vs depth-topic GT where both exist
    problem: str | None = None           # "empty_output" | "no_agreement" (pipeline.PROBLEMS): wrong, no error
    scale_change: float | None = None    # published alignment vs the previous frame's (replay.stability)
    fit_change: float | None = None      # this frame's own fit vs the previous frame's


@dataclass
class Preview:
    path: str
    backend: str
    condition: str
    index: int


class RunReport:
    """Collects frame records and writes the report files into ``out_dir``."""

    def __init__(self, out_dir: str | os.PathLike, run_info: dict, regions: list[str], scalings: list[str],
                 primary_scaling: str | None = None):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.run_info = dict(run_info)
        self.regions = list(regions)
        self.scalings = list(scalings)
        self.primary = primary_scaling or self.scalings[0]
        self.records: list[FrameRecord] = []
        self.distance: dict[tuple[str, str, str], DistanceErrors] = {}  # (backend, condition, region) -> bins
        self.previews: list[Preview] = []
        self.notes: list[str] = []
        self.live_stats: dict[str, dict] = {}
        self.integrity: dict[str, dict] = {}  # bag path -> what its check found (BagIntegrity.to_dict)
        self.embodied: EmbodiedTable | None = None  # the VLE table, when the replay asks for it
        self.output_bag: str | None = None
        self.complete = False
        self.error: str | None = None
        self.started = time.time()
        self._last_checkpoint = 0.0
        self.files: dict[str, str] = {}

    # ----------------------------------------------------------------- collecting
    def add(self, record: FrameRecord) -> None:
        self.records.append(record)

    def distance_bins(self, backend: str, condition: str, region: str = "all") -> DistanceErrors:
        key = (backend, condition, region)
        if key not in self.distance:
            self.distance[key] = DistanceErrors()
        return self.distance[key]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def set_integrity(self, bag: str, integrity) -> None:
        self.integrity[str(bag)] = {**integrity.to_dict(), "summary": integrity.summary()}

    def damaged_bags(self) -> dict[str, dict]:
        return {bag: entry for bag, entry in self.integrity.items() if entry["status"] == "damaged"}

    def mark_failed(self, reason: str) -> None:
        self.complete = False
        self.error = reason

    # ----------------------------------------------------------------- aggregation
    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(r.backend for r in self.records)) or list(self.run_info.get("backends", []))

    @property
    def conditions(self) -> list[str]:
        return list(dict.fromkeys(r.condition for r in self.records))

    def summary(self) -> dict:
        """{backend: {condition | "all": {region: {scaling: metrics}}}}."""
        out: dict = {}
        for backend in self.backends:
            recs = [r for r in self.records if r.backend == backend and not r.dropped]
            per_backend = out.setdefault(backend, {})
            for condition in self.conditions + [ALL]:
                sub = recs if condition == ALL else [r for r in recs if r.condition == condition]
                if not sub and condition != ALL:
                    continue
                per_backend[condition] = {
                    region: {scaling: mean_metrics([r.scores[(region, scaling)] for r in sub
                                                    if (region, scaling) in r.scores])
                             for scaling in self.scalings}
                    for region in self.regions}
        return out

    def timing(self) -> dict:
        """Per backend: processing time (offline) and end-to-end latency and drops (live)."""
        out = {}
        for backend in self.backends:
            recs = [r for r in self.records if r.backend == backend]
            entry = {"frames": len(recs), "dropped": sum(r.dropped for r in recs),
                     "frames_with_error": sum(1 for r in recs if r.error),
                     **{f"frames_{p}": sum(1 for r in recs if r.problem == p) for p in PROBLEMS}}
            for key in ("processing_ms", "latency_ms"):
                values = np.array([getattr(r, key) for r in recs if getattr(r, key) is not None], dtype=float)
                if values.size:
                    entry[key] = {"mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
                                  "p95": float(np.percentile(values, 95)), "max": float(values.max())}
            entry.update(self.live_stats.get(backend, {}))
            out[backend] = entry
        return out

    def gt_agreement(self) -> dict | None:
        values = [r.gt_agreement for r in self.records if r.gt_agreement is not None and math.isfinite(r.gt_agreement)]
        if not values:
            return None
        return {"abs_rel_mean": float(np.mean(values)), "abs_rel_max": float(np.max(values)), "frames": len(values)}

    # ----------------------------------------------------------------- text
    def table(self, region: str | None = None, scaling: str | None = None, markdown: bool = False) -> str:
        """Metrics per backend and condition for one region and scaling."""
        region = region or self.regions[0]
        scaling = scaling or self.primary
        summary = self.summary()
        header = ["backend", "condition"] + [title for _, title, _ in TABLE_COLUMNS]
        rows = []
        for backend, per_cond in summary.items():
            for condition, per_region in per_cond.items():
                m = per_region.get(region, {}).get(scaling)
                if m is None:
                    continue
                cells = [backend, condition]
                for key, _, fmt in TABLE_COLUMNS:
                    v = m.get(key)
                    cells.append("-" if v is None or (isinstance(v, float) and not math.isfinite(v))
                                 else fmt.format(v))
                rows.append(cells)
        return _format_table(header, rows, markdown)

    def timing_table(self, markdown: bool = False) -> str:
        header = ["backend", "frames", "dropped", "proc mean ms", "proc p95 ms", "latency mean ms",
                  "latency p95 ms"]
        rows = []
        for backend, t in self.timing().items():
            proc, lat = t.get("processing_ms", {}), t.get("latency_ms", {})
            rows.append([backend, str(t["frames"]), str(t["dropped"]),
                         _fmt(proc.get("mean")), _fmt(proc.get("p95")), _fmt(lat.get("mean")), _fmt(lat.get("p95"))])
        return _format_table(header, rows, markdown)

    @property
    def active_regions(self) -> list[str]:
        """Regions that have at least one scored frame (e.g. "road" only with a road mask or labels)."""
        used = {region for r in self.records for region, _ in r.scores}
        return [region for region in self.regions if region in used] or self.regions[:1]

    def console_summary(self) -> str:
        parts = []
        for region in self.active_regions:
            parts.append(f"Depth metrics, {region} pixels, scaling '{self.primary}' (per-frame means):")
            parts.append(self.table(region))
            parts.append("")
        parts.append("Timing:")
        parts.append(self.timing_table())
        return "\n".join(parts)

    def markdown(self) -> str:
        info = self.run_info
        lines = ["# Depth replay report", ""]
        status = "complete" if self.complete else f"INCOMPLETE: {self.error or 'still running'}"
        if self.damaged_bags():
            status += f", {len(self.damaged_bags())} DAMAGED bag(s): frames they lost are dropped"
        lines += [f"- status: **{status}**",
                  f"- mode: {info.get('mode', '?')}",
                  f"- bags: {', '.join(info.get('bags', []))}",
                  *[f"- bag `{bag}`: {entry['summary']}" for bag, entry in self.integrity.items()],
                  f"- backends: {', '.join(info.get('backends', []))}",
                  f"- protocol: {_protocol_text(info.get('protocol', {}))}",
                  f"- frames scored: {sum(1 for r in self.records if r.scores)} of {len(self.records)} records",
                  f"- written: {time.strftime('%Y-%m-%d %H:%M:%S')}"]
        if self.output_bag:
            lines.append(f"- output bag: `{self.output_bag}`")
        agreement = self.gt_agreement()
        if agreement:
            lines.append(f"- ground truth check, LiDAR projection vs depth topic: AbsRel mean "
                         f"{agreement['abs_rel_mean']:.4f}, max {agreement['abs_rel_max']:.4f} "
                         f"over {agreement['frames']} frames")
        lines += self.problem_lines()
        lines.append("")
        for region in self.active_regions:
            for scaling in self.scalings:
                lines += [f"## {region} pixels, scaling `{scaling}`", "",
                          self.table(region, scaling, markdown=True), ""]
        lines += ["## Timing", "", self.timing_table(markdown=True), ""]
        lines += stability_markdown(self.stability())
        if self.embodied is not None:
            lines += self.embodied.markdown()
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        plots = [p for p in ("plots/error_vs_distance.png", "plots/per_condition.png", "plots/latency.png")
                 if (self.out / p).exists()]
        if plots:
            lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
        if self.previews:
            lines += ["## Previews (image | depth | ground truth | AbsRel error 0..0.3)", ""]
            lines += [f"![{p.backend} {p.condition} {p.index}]({p.path})" for p in self.previews] + [""]
        lines += ["## Files", "", "- `metrics.json`: summary, timing, protocol",
                  "- `frames.csv`: one row per backend, frame, region and scaling", ""]
        return "\n".join(lines)

    def problem_lines(self) -> list[str]:
        """A warning line per backend whose output was wrong without an error (#13: never silent)."""
        lines = []
        for backend, t in self.timing().items():
            for problem, text in (("empty_output", "published no valid depth"),
                                  ("no_agreement", "disagreed with the embodied prior")):
                if t.get(f"frames_{problem}"):
                    lines.append(f"- **warning**: `{backend}` {text} on {t[f'frames_{problem}']} of {t['frames']} "
                                 f"frames ({problem})")
        return lines

    def stability(self) -> dict:
        return stability(self.records)

    # ----------------------------------------------------------------- files
    def metrics_json(self) -> dict:
        return {"complete": self.complete, "error": self.error, "run": self.run_info,
                "damaged": bool(self.damaged_bags()), "integrity": self.integrity,
                "summary": self.summary(), "timing": self.timing(), "gt_agreement": self.gt_agreement(),
                "stability": self.stability(),
                "embodied": self.embodied.table() if self.embodied is not None else None,
                "distance": {f"{b}/{c}/{r}": d.table() for (b, c, r), d in self.distance.items()},
                "notes": self.notes, "output_bag": self.output_bag,
                "previews": [p.path for p in self.previews],
                "elapsed_s": time.time() - self.started}

    def frames_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["backend", "bag", "condition", "frame", "stamp_ns", "region", "scaling", *METRIC_NAMES,
                         "pixels", "coverage", "scale", "shift", "processing_ms", "latency_ms", "dropped",
                         "source", "gt_source", "gt_agreement", "error", "problem", "scale_change", "fit_change"])
        for r in self.records:
            common_tail = [_fmt(r.processing_ms), _fmt(r.latency_ms), int(r.dropped), r.source, r.gt_source,
                           _fmt(r.gt_agreement, 6), r.error or "", r.problem or "", _fmt(r.scale_change, 6),
                           _fmt(r.fit_change, 6)]
            if not r.scores:
                writer.writerow([r.backend, r.bag, r.condition, r.index, r.stamp_ns, "", "",
                                 *([""] * len(METRIC_NAMES)), "", "", "", "", *common_tail])
                continue
            for (region, scaling), s in r.scores.items():
                writer.writerow([r.backend, r.bag, r.condition, r.index, r.stamp_ns, region, scaling,
                                 *[_fmt(s.metrics[m], 6) for m in METRIC_NAMES], s.n, _fmt(s.coverage, 4),
                                 _fmt(s.scale, 6), _fmt(s.shift, 6), *common_tail])
        return buf.getvalue()

    def checkpoint(self, min_interval_s: float = 5.0, force: bool = False) -> None:
        """Rewrite metrics.json, frames.csv and report.md if ``min_interval_s`` passed since the last time."""
        now = time.time()
        if not force and now - self._last_checkpoint < min_interval_s:
            return
        self._last_checkpoint = now
        write_json_atomic(self.out / "metrics.json", self.metrics_json())
        write_text_atomic(self.out / "frames.csv", self.frames_csv())
        write_text_atomic(self.out / "report.md", self.markdown())

    def finalise(self, plots: bool = True) -> None:
        """Plots (if any data and matplotlib work), then metrics.json, frames.csv, report.md."""
        if plots and self.records:
            try:
                self.write_plots()
            except Exception as exc:  # noqa: BLE001 - a broken plot must not lose the numbers
                self.note(f"plots could not be drawn: {type(exc).__name__}: {exc}")
        self.checkpoint(force=True)

    # ----------------------------------------------------------------- plots
    def write_plots(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plots = self.out / "plots"
        # error vs distance, one panel per region
        regions = [r for r in self.active_regions if any(k[2] == r for k in self.distance)]
        if regions:
            fig, axes = plt.subplots(1, len(regions), figsize=(6.5 * len(regions), 4), squeeze=False)
            for ax, reg in zip(axes[0], regions):
                for (backend, condition, r), bins in sorted(self.distance.items()):
                    rows = [row for row in bins.table() if row["pixels"] > 0] if r == reg else []
                    if rows:
                        centres = [(row["from_m"] + row["to_m"]) / 2 for row in rows]
                        ax.plot(centres, [row["abs_rel"] for row in rows], marker="o", label=f"{backend} / {condition}")
                ax.set_xlabel("ground-truth depth (m)")
                ax.set_ylabel("AbsRel (as published)")
                ax.set_title(f"Error vs distance ({reg} pixels)")
                ax.grid(alpha=0.3)
                ax.legend(fontsize=8)
            save_figure_atomic(fig, plots / "error_vs_distance.png")
            plt.close(fig)
        # per-condition bars: AbsRel and delta1 per region
        summary = self.summary()
        conditions = self.conditions
        regions = self.active_regions
        if summary and conditions:
            fig, axes = plt.subplots(len(regions), 2, figsize=(10, 3.6 * len(regions)), squeeze=False)
            width = 0.8 / max(len(summary), 1)
            x = np.arange(len(conditions))
            for row, reg in enumerate(regions):
                for i, (backend, per_cond) in enumerate(summary.items()):
                    for ax, key in zip(axes[row], ("abs_rel", "delta1")):
                        vals = [per_cond.get(c, {}).get(reg, {}).get(self.primary, {}).get(key, float("nan"))
                                for c in conditions]
                        ax.bar(x + i * width, vals, width, label=backend)
                for ax, title in zip(axes[row], ("AbsRel (lower is better)", "delta < 1.25 (higher is better)")):
                    ax.set_xticks(x + width * (len(summary) - 1) / 2)
                    ax.set_xticklabels(conditions)
                    ax.set_title(f"{title}, {reg} pixels", fontsize=10)
                    ax.grid(axis="y", alpha=0.3)
                axes[row][0].legend(fontsize=8)
            fig.suptitle(f"Per condition (scaling '{self.primary}')")
            fig.tight_layout()
            save_figure_atomic(fig, plots / "per_condition.png")
            plt.close(fig)
        # latency / processing time histogram
        fig, ax = plt.subplots(figsize=(7, 4))
        drawn = False
        for backend in self.backends:
            recs = [r for r in self.records if r.backend == backend]
            lat = [r.latency_ms for r in recs if r.latency_ms is not None]
            proc = [r.processing_ms for r in recs if r.processing_ms is not None]
            if lat:
                ax.hist(lat, bins=30, alpha=0.6, label=f"{backend}: end-to-end latency")
                drawn = True
            if proc:
                ax.hist(proc, bins=30, alpha=0.6, label=f"{backend}: pipeline time")
                drawn = True
        if drawn:
            ax.set_xlabel("milliseconds")
            ax.set_ylabel("frames")
            ax.set_title("Latency")
            ax.legend(fontsize=8)
            save_figure_atomic(fig, plots / "latency.png")
        plt.close(fig)


# --------------------------------------------------------------------------- previews
def preview_image(image: np.ndarray, depth: np.ndarray, gt: np.ndarray | None, min_depth: float,
                  max_depth: float, title: str = "", max_error: float = 0.3, width: int = 480) -> np.ndarray:
    """image | depth | ground truth | AbsRel error, each resized to ``width`` wide -> uint8 RGB."""
    import cv2

    from ..colorize import colorize_depth

    H, W = depth.shape
    panels = [image, colorize_depth(depth, min_depth, max_depth)]
    if gt is not None:
        gt_vis = gt
        if np.count_nonzero(np.isfinite(gt)) < 0.3 * gt.size:  # sparse LiDAR: thicken points to see them
            filled = np.where(np.isfinite(gt), gt, 0).astype(np.float32)
            gt_vis = cv2.dilate(filled, np.ones((3, 3), np.uint8))
            gt_vis[gt_vis <= 0] = np.nan
        panels.append(colorize_depth(gt_vis, min_depth, max_depth))
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(depth - gt) / gt
        known = np.isfinite(err)
        scaled = np.clip(np.nan_to_num(err, nan=0.0) / max_error * 255.0, 0, 255).astype(np.uint8)
        err_rgb = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)[:, :, ::-1].copy()
        err_rgb[~known] = 0
        if np.count_nonzero(known) < 0.3 * known.size:
            err_rgb = cv2.dilate(err_rgb, np.ones((3, 3), np.uint8))
        panels.append(err_rgb)
    h = max(int(round(width * H / W)), 1)
    resized = [cv2.resize(np.ascontiguousarray(p), (width, h), interpolation=cv2.INTER_NEAREST) for p in panels]
    strip = np.concatenate(resized, axis=1)
    if title:
        banner = np.zeros((22, strip.shape[1], 3), np.uint8)
        cv2.putText(banner, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        strip = np.concatenate([banner, strip], axis=0)
    return strip


# --------------------------------------------------------------------------- helpers
def _protocol_text(p: dict) -> str:
    if not p:
        return "?"
    clip = ", predictions clipped to the range" if p.get("clip_prediction") else ""
    return (f"ground truth in ({p.get('min_depth'):g}, {p.get('max_depth'):g}) m, crop {p.get('crop')}{clip}; "
            "frames weigh equally")


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return f"{v:.{digits}f}"


def _format_table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    line = lambda cells: "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


__all__ = ["FrameRecord", "FrameScore", "Preview", "RunReport", "preview_image", "write_bytes_atomic",
           "write_json_atomic", "write_png_atomic", "write_text_atomic", "save_figure_atomic"]
