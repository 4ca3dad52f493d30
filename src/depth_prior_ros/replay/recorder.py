"""Shared by offline and live replay: score each depth map, record it, write previews and the output bag."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bag_io import BagWriter
from .config import ReplayConfig
from .frames import Frame, FrameSink, LostFrame
from .metrics import FrameScore, score_frame
from .report import LOST_TO_DAMAGE, FrameRecord, Preview, RunReport, preview_image, write_png_atomic


# --------------------------------------------------------------------------- scoring
def score(frame: Frame, depth: np.ndarray, config: ReplayConfig,
          prior_aligned: np.ndarray | None = None) -> dict[tuple[str, str], FrameScore]:
    """(region, scaling) -> FrameScore for one depth map; empty when the frame has no ground truth."""
    if frame.gt is None:
        return {}
    regions = {"all": None}
    if frame.road is not None:
        regions["road"] = frame.road
    out = {}
    for region, mask in regions.items():
        for scaling in config.scalings:
            out[(region, scaling)] = score_frame(depth, frame.gt, config.protocol.with_scaling(scaling), mask,
                                                 prior_aligned)
    return out


# --------------------------------------------------------------------------- output bag
class OutputBag:
    """The replay's MCAP: input image, camera_info, ground truth, per backend its depth topics, and the
    input bags' tf tree (/tf and /tf_static as recorded), so ``ros2 bag play`` of it feeds tf2 and RViz.

    An input bag without tf gets each frame's camera pose on /tf instead, from ``ground_frame``.
    """

    # tf a little past each frame is copied before it, so tf2 can interpolate at the frame's stamp.
    TF_LOOKAHEAD_NS = 1_000_000_000

    def __init__(self, path: Path, ground_frame: str = "base_footprint"):
        self.writer = BagWriter(path, overwrite=True, custom_data={"depth_prior.kind": "replay_output"})
        self.writer.open()
        self.ground_frame = ground_frame
        self._inputs_written: set[tuple[str, int]] = set()
        self._tf_source: str | None = None
        self._tf = iter(())
        self._tf_next = None
        self._tf_copied = 0

    def write_inputs(self, frame: Frame) -> None:
        from . import bag_io

        key = (frame.bag, frame.stamp_ns)
        if key in self._inputs_written:
            return
        self._inputs_written.add(key)
        t = frame.stamp_ns
        w = self.writer
        self._copy_tf(frame)
        if not self._tf_copied:
            w.write("/tf", bag_io.make_tf_message([bag_io.make_transform_stamped(
                frame.T_ground_from_camera, self.ground_frame, frame.frame_id or "camera", t)]), bag_io.TF_MESSAGE, t)
        w.write("/input/image", bag_io.make_image(frame.image, t, frame.frame_id), bag_io.IMAGE, t)
        w.write("/input/camera_info", bag_io.normalised_camera_info(frame.camera_info, t, frame.frame_id),
                bag_io.CAMERA_INFO, t)
        if frame.gt is not None:
            w.write("/ground_truth/depth", bag_io.make_image(frame.gt.astype(np.float32), t, frame.frame_id),
                    bag_io.IMAGE, t)

    def _copy_tf(self, frame: Frame) -> None:
        """Copy the frame's bag's tf messages up to a little past the frame (a new bag starts a new copy)."""
        from . import bag_io

        if frame.bag_path != self._tf_source:
            self._close_tf()
            self._tf_source, self._tf_copied = frame.bag_path, 0
            self._tf = _tf_messages(frame.bag_path) if frame.bag_path else iter(())
            self._tf_next = next(self._tf, None)
        horizon = frame.stamp_ns + self.TF_LOOKAHEAD_NS
        while self._tf_next is not None and self._tf_next.log_ns <= horizon:
            m = self._tf_next
            topic = "/tf_static" if m.topic.endswith("tf_static") else "/tf"
            self.writer.write(topic, m.msg, bag_io.TF_MESSAGE, m.log_ns)
            self._tf_copied += 1
            self._tf_next = next(self._tf, None)

    def _close_tf(self) -> None:
        close = getattr(self._tf, "close", None)
        if close is not None:
            close()

    def write_depth(self, label: str, frame: Frame, depth: np.ndarray) -> None:
        from . import bag_io

        t = frame.stamp_ns
        topic = "/" + label.replace("-", "_").replace(".", "_")
        self.writer.write(f"{topic}/depth", bag_io.make_image(np.asarray(depth, np.float32), t, frame.frame_id),
                          bag_io.IMAGE, t)
        info = bag_io.normalised_camera_info(frame.camera_info, t, frame.frame_id)
        self.writer.write(f"{topic}/depth/camera_info", info, bag_io.CAMERA_INFO, t)

    def close(self) -> Path:
        self._close_tf()
        return self.writer.close()


def _tf_messages(bag_path: str):
    """The tf messages of one bag in log-time order (a reader of its own, beside the replay's)."""
    from .bag_io import TF_MESSAGE, BagReader

    with BagReader(bag_path) as bag:
        yield from bag.messages(bag.find_topics(TF_MESSAGE))


# --------------------------------------------------------------------------- driver
class Recorder:
    """Shared by offline and live: scores a depth map, records it, writes previews and the output bag."""

    def __init__(self, config: ReplayConfig, report: RunReport, out_bag: OutputBag | None):
        self.config, self.report, self.out_bag = config, report, out_bag
        self._previews: dict[tuple[str, str], int] = {}

    def record(self, label: str, frame: Frame, depth: np.ndarray | None, *, processing_ms=None, latency_ms=None,
               dropped=False, source="", error=None, prior_aligned=None, problem=None, road_mask=None,
               scale_change=None, fit_change=None) -> FrameRecord:
        """``problem``: the pipeline's (offline); a depth with no finite pixel is "empty_output" either way.
        ``road_mask``: the mask the pipeline used (its segmenter's, or the bag's), for the embodied table."""
        scores = score(frame, depth, self.config, prior_aligned) if depth is not None else {}
        if problem is None and depth is not None and not np.isfinite(depth).any():
            problem = "empty_output"
        rec = FrameRecord(label, frame.bag, frame.condition, frame.index, frame.stamp_ns, scores, processing_ms,
                          latency_ms, dropped, source, error, frame.gt_source, frame.gt_agreement, problem,
                          scale_change, fit_change)
        self.report.add(rec)
        if depth is None:
            return rec
        if self.report.embodied is not None and frame.gt is not None:
            self.report.embodied.add(label, depth, frame.gt, road_mask)
        if frame.gt is not None:
            self.report.distance_bins(label, frame.condition).add_frame(depth, frame.gt, self.config.protocol)
            if frame.road is not None:
                self.report.distance_bins(label, frame.condition, "road").add_frame(
                    depth, frame.gt, self.config.protocol, frame.road)
        if self.out_bag is not None:
            self.out_bag.write_depth(label, frame, depth)
        key = (label, frame.condition)
        if frame.gt is not None and self._previews.get(key, 0) < self.config.previews_per_condition:
            self._previews[key] = self._previews.get(key, 0) + 1
            self.write_preview(label, frame, depth)
        return rec

    def sink(self, labels: list[str]) -> "FrameSink":
        """What iter_frames reports to: frames a damaged bag took away become drops of ``labels``."""
        return _RecorderSink(self, list(labels))

    def write_preview(self, label: str, frame: Frame, depth: np.ndarray) -> None:
        proto = self.config.protocol
        title = f"{label} | {frame.condition} | {frame.bag} #{frame.index}"
        # Colours over inverse depth from 3 m: nearer pixels saturate, the rest of the scene gets the range.
        strip = preview_image(frame.image, depth, frame.gt, max(proto.min_depth, 3.0), proto.max_depth, title)
        rel = f"previews/{_safe(label)}_{_safe(frame.condition)}_{frame.index:04d}.png"
        write_png_atomic(self.report.out / rel, strip)
        self.report.previews.append(Preview(rel, label, frame.condition, frame.index))


class _RecorderSink(FrameSink):
    def __init__(self, recorder: Recorder, labels: list[str]):
        self.recorder, self.labels = recorder, labels

    def lost(self, frame: LostFrame) -> None:
        for label in self.labels:
            self.recorder.report.add(FrameRecord(label, frame.bag, frame.condition, frame.index, frame.stamp_ns,
                                                 dropped=True, source=LOST_TO_DAMAGE, error=frame.reason))

    def bag_checked(self, bag_path: str, integrity) -> None:
        self.recorder.report.set_integrity(bag_path, integrity)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
