"""Replay bags through the depth pipeline and score it: offline (in-process) or live (through the ROS node).

Offline runs every backend's :class:`DepthPipeline` on each frame as fast as possible; it is
deterministic and uses exactly the node's configuration (parsed by the node's own parameter parser).
Live (``live=True``, see :mod:`.live`) publishes the frames to a ``depth_node`` subprocess and scores
what comes back, with end-to-end latency and drops.

Whatever happens (a damaged bag, a missing topic, Ctrl-C), the report of the frames finished so far
is written before the error propagates; every report file is replaced atomically.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .bag_io import BagError, BagWriter
from .frames import Frame, FrameOptions, iter_frames
from .metrics import EvalProtocol, FrameScore, score_frame
from .report import FrameRecord, Preview, RunReport, preview_image, write_png_atomic


class ReplayError(RuntimeError):
    """A replay that cannot go on; one sentence (the CLI turns it into CommandError)."""


@dataclass
class BackendSpec:
    """One backend to replay: registry name, weights, extras; ``label`` names it in tables and topics."""

    name: str
    weights: str = ""
    options: dict = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "fp16"
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name

    def node_params(self) -> dict:
        return {"backend": self.name, "weights": self.weights, "device": self.device, "dtype": self.dtype,
                "backend_options": json.dumps(self.options)}


@dataclass
class ReplayConfig:
    frames: FrameOptions = field(default_factory=FrameOptions)
    backends: list[BackendSpec] = field(default_factory=lambda: [BackendSpec("prior_only")])
    node_params: dict = field(default_factory=dict)  # depth_node parameters (NODES.md names) to override
    protocol: EvalProtocol = field(default_factory=EvalProtocol)
    scalings: tuple[str, ...] = ("metric", "median")
    conditions: list[str] | None = None   # one for all bags, or one per bag
    previews_per_condition: int = 1
    write_bag: bool = True
    progress: bool = True
    # live mode
    live: bool = False
    rate: float | None = None             # Hz; None = the recorded image timing
    lockstep: bool = False                # wait for each depth image (or frame_timeout) before the next
    domain_id: int | None = None          # None: DEPTH_PRIOR_DOMAIN_ID / ROS_DOMAIN_ID or random 120-149
    startup_timeout: float = 60.0
    frame_timeout: float = 5.0

    def __post_init__(self) -> None:
        labels = [b.display for b in self.backends]
        if not labels:
            raise ValueError("replay needs at least one backend")
        if len(set(labels)) != len(labels):
            raise ValueError(f"backend labels must be unique, got {', '.join(labels)}")


def node_settings(config: ReplayConfig, backend: BackendSpec, check_files: bool = True):
    """The node's own parsed settings for this backend (so offline == what the node runs)."""
    from ..parameters import ParameterError, parse_depth_params

    values = {**config.node_params, **backend.node_params()}
    try:
        return parse_depth_params(values, check_files=check_files)
    except ParameterError as exc:
        raise ReplayError(str(exc)) from exc


def condition_for(config: ReplayConfig, index: int, n_bags: int) -> str | None:
    conds = config.conditions
    if not conds:
        return None
    if len(conds) == 1:
        return conds[0]
    if len(conds) != n_bags:
        raise ReplayError(f"give one --condition for all bags or one per bag ({n_bags}), not {len(conds)}")
    return conds[index]


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


def frame_alignment(result, pipeline) -> np.ndarray | None:
    """The raw prediction aligned to this frame's prior alone (no temporal filter): scaling "prior"."""
    from ..align import align_to_prior

    pred = result.prediction
    if pred is None:
        return None
    fit = align_to_prior(pred.values, pred.kind, result.prior.depth, result.prior.confidence, pred.valid,
                         pipeline.config.align)
    return fit.depth


# --------------------------------------------------------------------------- output bag
class OutputBag:
    """The replay's MCAP: input image, camera_info, ground truth, and per backend its depth topics."""

    def __init__(self, path: Path):
        self.writer = BagWriter(path, overwrite=True, custom_data={"depth_prior.kind": "replay_output"})
        self.writer.open()
        self._inputs_written: set[tuple[str, int]] = set()
        self._static_written = False

    def write_inputs(self, frame: Frame) -> None:
        from . import bag_io

        key = (frame.bag, frame.stamp_ns)
        if key in self._inputs_written:
            return
        self._inputs_written.add(key)
        t = frame.stamp_ns
        w = self.writer
        if not self._static_written:
            w.write("/tf_static", bag_io.make_tf_message([bag_io.make_transform_stamped(
                frame.T_ground_from_camera, "replay_ground", frame.frame_id or "camera", t)]), bag_io.TF_MESSAGE, t)
            self._static_written = True
        w.write("/input/image", bag_io.make_image(frame.image, t, frame.frame_id), bag_io.IMAGE, t)
        w.write("/input/camera_info", bag_io.normalised_camera_info(frame.camera_info, t, frame.frame_id),
                bag_io.CAMERA_INFO, t)
        if frame.gt is not None:
            w.write("/ground_truth/depth", bag_io.make_image(frame.gt.astype(np.float32), t, frame.frame_id),
                    bag_io.IMAGE, t)

    def write_depth(self, label: str, frame: Frame, depth: np.ndarray) -> None:
        from . import bag_io

        t = frame.stamp_ns
        topic = "/" + label.replace("-", "_").replace(".", "_")
        self.writer.write(f"{topic}/depth", bag_io.make_image(np.asarray(depth, np.float32), t, frame.frame_id),
                          bag_io.IMAGE, t)
        info = bag_io.normalised_camera_info(frame.camera_info, t, frame.frame_id)
        self.writer.write(f"{topic}/depth/camera_info", info, bag_io.CAMERA_INFO, t)

    def close(self) -> Path:
        return self.writer.close()


# --------------------------------------------------------------------------- driver
class Recorder:
    """Shared by offline and live: scores a depth map, records it, writes previews and the output bag."""

    def __init__(self, config: ReplayConfig, report: RunReport, out_bag: OutputBag | None):
        self.config, self.report, self.out_bag = config, report, out_bag
        self._previews: dict[tuple[str, str], int] = {}

    def record(self, label: str, frame: Frame, depth: np.ndarray | None, *, processing_ms=None, latency_ms=None,
               dropped=False, source="", error=None, prior_aligned=None) -> FrameRecord:
        scores = score(frame, depth, self.config, prior_aligned) if depth is not None else {}
        rec = FrameRecord(label, frame.bag, frame.condition, frame.index, frame.stamp_ns, scores, processing_ms,
                          latency_ms, dropped, source, error, frame.gt_source, frame.gt_agreement)
        self.report.add(rec)
        if depth is None:
            return rec
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

    def write_preview(self, label: str, frame: Frame, depth: np.ndarray) -> None:
        proto = self.config.protocol
        title = f"{label} | {frame.condition} | {frame.bag} #{frame.index}"
        # Colours over inverse depth from 3 m: nearer pixels saturate, the rest of the scene gets the range.
        strip = preview_image(frame.image, depth, frame.gt, max(proto.min_depth, 3.0), proto.max_depth, title)
        rel = f"previews/{_safe(label)}_{_safe(frame.condition)}_{frame.index:04d}.png"
        write_png_atomic(self.report.out / rel, strip)
        self.report.previews.append(Preview(rel, label, frame.condition, frame.index))


def run_replay(bags: list[str | Path], out_dir: str | Path, config: ReplayConfig) -> RunReport:
    """Replay ``bags`` into ``out_dir``. Raises ReplayError (bags, topics, configuration) or
    KeyboardInterrupt after writing the report of everything finished."""
    bags = [Path(b) for b in bags]
    if not bags:
        raise ReplayError("give at least one bag to replay")
    out = Path(out_dir)
    run_info = {"mode": "live" if config.live else "offline", "bags": [str(b) for b in bags],
                "backends": [b.display for b in config.backends],
                "backend_specs": [asdict(b) for b in config.backends],
                "protocol": asdict(config.protocol), "scalings": list(config.scalings),
                "node_params": config.node_params, "frame_options": _frame_options_info(config.frames),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _remove_stale_outputs(out)
    report = RunReport(out, run_info, regions=["all", "road"], scalings=list(config.scalings))
    out_bag = None
    try:
        # Check every bag and the configuration before spending time on any frame.
        preflight(bags, config)
        if config.write_bag:
            out_bag = OutputBag(out / "output_bag")
        recorder = Recorder(config, report, out_bag)
        if config.live:
            from .live import run_live

            run_live(bags, config, recorder)
        else:
            run_offline(bags, config, recorder)
        report.complete = True
    except BagError as exc:
        report.mark_failed(str(exc))
        raise ReplayError(str(exc)) from exc
    except ReplayError as exc:
        report.mark_failed(str(exc))
        raise
    except KeyboardInterrupt:
        report.mark_failed("interrupted (Ctrl-C)")
        raise
    except BaseException as exc:
        report.mark_failed(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if out_bag is not None:
            try:
                report.output_bag = str(out_bag.close())
            except Exception as exc:  # noqa: BLE001 - the report matters more than the bag
                report.note(f"output bag could not be finalised: {exc}")
        report.finalise()
    return report


def preflight(bags: list[Path], config: ReplayConfig) -> None:
    """Open each bag and resolve its topics; validate node parameters; raise one clear sentence."""
    from .bag_io import BagReader
    from .frames import resolve_topics

    for i, bag in enumerate(bags):
        condition_for(config, i, len(bags))
        with BagReader(bag) as reader:
            topics = resolve_topics(reader, config.frames)
            use_mask = bool(config.node_params.get("use_road_mask", False))
            if use_mask and topics.road_mask is None:
                raise ReplayError(f"bag {bag}: use_road_mask is set but the bag has no road mask topic "
                                  "(pass --road-mask-topic)")
    for spec in config.backends:
        node_settings(config, spec)


def run_offline(bags: list[Path], config: ReplayConfig, recorder: Recorder) -> None:
    from tqdm import tqdm

    from ..models.base import BackendError
    from ..models.registry import create_backend
    from ..pipeline import DepthPipeline, FrameError

    pipelines = {}
    for spec in config.backends:
        settings = node_settings(config, spec)
        try:
            backend = create_backend(settings.backend, **settings.backend_kwargs())
        except BackendError as exc:
            raise ReplayError(f"backend '{spec.display}' cannot be loaded: {exc}") from exc
        pipelines[spec.display] = (DepthPipeline(backend, settings.pipeline), settings.use_road_mask)
    want_prior_aligned = "prior" in config.scalings
    report = recorder.report
    warmed: set[str] = set()
    for i, bag in enumerate(bags):
        for pipe, _ in pipelines.values():
            reset_pipeline(pipe)  # each bag is a new sequence
        stats: dict = {}
        frames = iter_frames(bag, config.frames, condition_for(config, i, len(bags)), stats)
        with tqdm(frames, desc=f"replay {bag.name}", unit="frame", disable=not config.progress,
                  leave=False) as bar:
            for frame in bar:
                if recorder.out_bag is not None:
                    recorder.out_bag.write_inputs(frame)
                for label, (pipe, use_mask) in pipelines.items():
                    if label not in warmed:  # like the node: allocate before the first timed frame
                        warmed.add(label)
                        _warmup(pipe, frame.camera.width, frame.camera.height, report)
                    mask = frame.road_mask_input if use_mask else None
                    try:
                        result = pipe.process(frame.image, frame.camera, frame.T_ground_from_camera, mask)
                    except FrameError as exc:
                        recorder.record(label, frame, None, dropped=True, error=str(exc))
                        continue
                    aligned = frame_alignment(result, pipe) if want_prior_aligned else None
                    recorder.record(label, frame, result.depth, processing_ms=result.timings_ms.get("total"),
                                    source=result.source, error=result.backend_error, prior_aligned=aligned)
                report.checkpoint()


def _warmup(pipe, width: int, height: int, report: RunReport) -> None:
    if pipe.backend is None:
        return
    try:
        pipe.backend.warmup(width, height)
    except Exception as exc:  # noqa: BLE001 - the frames will show the failure (prior fallback)
        report.note(f"backend '{getattr(pipe.backend, 'name', '?')}' failed to warm up: {type(exc).__name__}: {exc}")


def reset_pipeline(pipe) -> None:
    """Forget the temporal filter and the cached ground geometry, so a bag's numbers do not depend on
    the bag replayed before it (the cache reuses a prior while the pose moves less than its tolerance)."""
    from ..prior.cache import GroundPriorCache

    pipe.reset()
    pipe.cache = GroundPriorCache(max_depth=pipe.config.max_depth)


def _remove_stale_outputs(out: Path) -> None:
    """Previews and plots of an earlier run into the same folder would be mistaken for this run's."""
    for sub in ("previews", "plots"):
        for png in (out / sub).glob("*.png"):
            png.unlink(missing_ok=True)


def _frame_options_info(options: FrameOptions) -> dict:
    info = asdict(options)
    return info


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))
