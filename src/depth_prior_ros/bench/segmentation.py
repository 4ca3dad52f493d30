"""What the road segmenter costs: per frame (as a ratio to copying one float32 frame, measured in the same
run) and in the node (throughput with it every frame and every 5th frame, as a ratio to the node
without it). A benchmark, not a test: the numbers go into benchmarks/REAL_DATA.md."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..processes import NodeProcess, unique_namespace
from .timing import Timing, measure, ratio

SIZES = ((1242, 375), (1600, 900))


@dataclass
class CostRow:
    size: str
    segment: Timing
    frame_copy: Timing

    @property
    def ratio(self) -> float:
        return ratio(self.segment.median, self.frame_copy.median)


@dataclass
class ThroughputRow:
    label: str
    every: int | None     # None: no segmenter
    throughput_hz: float
    segmentation_ms: float | None
    prior_ms: float | None


def camera_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A real camera frame resized to (width, height): the segmenter's cost does not depend on content,
    but a real frame keeps its output (and the prior it feeds) realistic."""
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def segmenter_cost(segmenter, image: np.ndarray, sizes=SIZES, min_time_s: float = 3.0) -> list[CostRow]:
    """Median per-frame cost of ``segmenter.segment`` at each size and of a float32 (H, W) frame copy."""
    rows = []
    for width, height in sizes:
        frame = camera_image(image, width, height)
        depth = np.random.default_rng(0).random((height, width), dtype=np.float32)
        seg = measure(lambda: segmenter.segment(frame), min_time_s=min_time_s, min_repeats=5, warmup=2)
        copy = measure(depth.copy, min_time_s=0.5, min_repeats=50)
        rows.append(CostRow(f"{width}x{height}", seg, copy))
    return rows


RATE_HZ = 10.0  # KITTI's camera rate. Back to back, the publisher (1.4 MB images) would take the CPU the
                # node needs on a 2-core machine and the ratio would measure the publisher.


def node_throughput(weights: str, card: str, image: np.ndarray, K: np.ndarray, log_dir: Path,
                    divisors=(1, 5), duration_s: float = 15.0, rate_hz: float = RATE_HZ) -> list[ThroughputRow]:
    """depth_node (prior_only) fed ``image`` at ``rate_hz``: without the segmenter, then with it every
    N-th frame for each divisor; outputs per second over the measured window."""
    from .driver import Driver
    from .transport import depth_node_params, stage_means

    from ..ros.conversions import image_msg

    height, width = image.shape[:2]
    plan = [("without segmenter", None)] + [(f"segmenter every {n}", n) for n in divisors]
    rows = []
    for label, every in plan:
        extra = {} if every is None else {"segmentation_weights": weights, "segmentation_card": card,
                                          "segmentation_every": every}
        namespace = unique_namespace("seg_bench")
        params = depth_node_params(**extra)  # shipped defaults: best-effort input, the mount from tf
        proc = NodeProcess("depth_prior_ros.ros.depth_node", params, log_dir / f"{label.replace(' ', '_')}.log",
                           namespace=namespace)
        with proc, Driver(width, height, K, namespace=namespace, reliable=True, camera_pose=(1.65, 0.0),
                          diagnostics_name=f"{namespace}/depth_node:") as driver:
            driver.image_msg = image_msg(image, "rgb8")
            driver.image_msg.header.frame_id = driver.info_msg.header.frame_id
            driver.wait_connected([driver.pub_image, driver.pub_info], ["depth"], 60.0)
            stats = driver.stream(rate_hz, duration_s=duration_s, warmup_s=3.0)
        stages = stage_means(stats.diagnostics)
        rows.append(ThroughputRow(label, every, stats.throughput_hz, stages.get("segmentation"), stages.get("prior")))
    return rows


def markdown(cost: list[CostRow], throughput: list[ThroughputRow], machine: str) -> list[str]:
    lines = ["## Road segmenter cost", "", f"Machine: {machine}. Per frame, median of repeated calls, beside a "
             "float32 (H, W) frame copy measured in the same run.", "",
             "| size | segment (ms) | float32 frame copy (ms) | ratio |", "|---|---|---|---|"]
    lines += [f"| {r.size} | {r.segment.median:.1f} | {r.frame_copy.median:.3f} | {r.ratio:,.0f}x |" for r in cost]
    base = next((r.throughput_hz for r in throughput if r.every is None), math.nan)
    lines += ["", f"depth_node (prior_only, 1242x375 KITTI frames published at {RATE_HZ:g} Hz; its shipped "
              "defaults: best-effort input over shared memory, the mount from tf; a frame "
              "that arrives while one is in work replaces the waiting one): outputs per second, as a ratio to the "
              "node without the segmenter.", "",
              "| node | throughput (Hz) | ratio | segmentation stage (ms, mean per frame) | prior stage (ms) |",
              "|---|---|---|---|---|"]
    for r in throughput:
        seg = "-" if r.segmentation_ms is None else f"{r.segmentation_ms:.1f}"
        prior = "-" if r.prior_ms is None else f"{r.prior_ms:.1f}"
        lines.append(f"| {r.label} | {r.throughput_hz:.2f} | {ratio(r.throughput_hz, base):.3f} | {seg} | {prior} |")
    return lines + [""]
