"""Replay bags through the depth pipeline and score it: offline (in-process) or live (through the ROS node).

Offline runs every backend's :class:`DepthPipeline` on each frame as fast as possible; it is
deterministic and uses exactly the node's configuration (parsed by the node's own parameter parser).
Live (``live=True``, see :mod:`.live`) publishes the frames to a ``depth_node`` subprocess and scores
what comes back, with end-to-end latency and drops.

Whatever happens (a damaged bag, a missing topic, Ctrl-C), the report of the frames finished so far
is written before the error propagates; every report file is replaced atomically.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..output_paths import check_apart_from_inputs, check_report_folder
from .bag_io import BagError
from .config import ReplayConfig, ReplayError, condition_for, node_settings
from .embodied import EmbodiedTable
from .frames import iter_frames
from .live import run_live
from .recorder import OutputBag, Recorder
from .report import RunReport


def frame_alignment(result, pipeline) -> np.ndarray | None:
    """The raw prediction aligned to this frame's prior alone (no temporal filter): scaling "prior"."""
    from ..align import align_to_prior
    from ..pipeline import trusted_confidence

    pred = result.prediction
    if pred is None:
        return None
    fit = align_to_prior(pred.values, pred.kind, result.prior.depth,
                         trusted_confidence(result.prior, result.road_mask), pred.valid, pipeline.config.align)
    return fit.depth


def run_replay(bags: list[str | Path], out_dir: str | Path, config: ReplayConfig) -> RunReport:
    """Replay ``bags`` into ``out_dir``. Raises OutputPathError (before writing anything) for an
    ``out_dir`` that is not new, empty or an earlier report, or that holds or lies in an input; then
    ReplayError (bags, topics, configuration) or KeyboardInterrupt after writing the report of
    everything finished."""
    bags = [Path(b) for b in bags]
    if not bags:
        raise ReplayError("give at least one bag to replay")
    check_apart_from_inputs(out_dir, bags)
    out = check_report_folder(out_dir)
    run_info = {"mode": "live" if config.live else "offline", "bags": [str(b) for b in bags],
                "backends": [b.display for b in config.backends],
                "backend_specs": [asdict(b) for b in config.backends],
                "protocol": asdict(config.protocol), "scalings": list(config.scalings),
                "node_params": config.node_params, "frame_options": asdict(config.frames),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _remove_stale_outputs(out)
    report = RunReport(out, run_info, regions=["all", "road"], scalings=list(config.scalings))
    if config.embodied:
        report.embodied = EmbodiedTable(config.protocol)
    out_bag = None
    try:
        # Check every bag and the configuration before spending time on any frame.
        preflight(bags, config, report)
        if config.write_bag:
            out_bag = OutputBag(out / "output_bag", config.frames.ground_frame or "base_footprint")
        recorder = Recorder(config, report, out_bag)
        if config.live:
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


def preflight(bags: list[Path], config: ReplayConfig, report: RunReport | None = None) -> None:
    """Open each bag (its integrity goes into ``report``) and resolve its topics; validate node
    parameters; raise one clear sentence."""
    from .bag_io import BagReader
    from .frames import resolve_topics

    for i, bag in enumerate(bags):
        condition_for(config, i, len(bags))
        with BagReader(bag) as reader:
            if report is not None:
                report.set_integrity(str(bag), reader.integrity)
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

    from ..parameters import ParameterError
    from .stability import applied_change

    pipelines = {}
    for spec in config.backends:
        settings = node_settings(config, spec)
        try:
            backend = create_backend(settings.backend, **settings.backend_kwargs())
            segmenter = settings.segmenter()
        except (BackendError, ParameterError) as exc:
            raise ReplayError(f"backend '{spec.display}' cannot be loaded: {exc}") from exc
        pipelines[spec.display] = (DepthPipeline(backend, settings.pipeline, segmenter, settings.segmentation_every),
                                   settings.use_road_mask)
    want_prior_aligned = "prior" in config.scalings
    report = recorder.report
    warmed: set[str] = set()
    for i, bag in enumerate(bags):
        previous: dict[str, tuple] = {}  # label -> (published params, own fit params) of the last frame
        for pipe, _ in pipelines.values():
            pipe.reset()  # each bag is a new sequence: no filter state, no cached prior from the last one
        stats: dict = {}
        frames = iter_frames(bag, config.frames, condition_for(config, i, len(bags)), stats,
                             sink=recorder.sink(list(pipelines)))
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
                    changes = _scale_changes(result, previous, label, applied_change)
                    recorder.record(label, frame, result.depth, processing_ms=result.timings_ms.get("total"),
                                    source=result.source, error=result.backend_error, prior_aligned=aligned,
                                    problem=result.problem, road_mask=result.road_mask, scale_change=changes[0],
                                    fit_change=changes[1])
                report.checkpoint()


def _scale_changes(result, previous: dict, label: str, applied_change) -> tuple[float | None, float | None]:
    """(published, own-fit) frame-to-frame change of the applied scale (replay.stability); updates ``previous``.
    None without an alignment applied (the prior's frames, metric depth published as it is)."""
    fit, pred = result.alignment, result.prediction
    if fit is None or pred is None or result.source != "network" or pred.kind == "metric_depth":
        previous.pop(label, None)
        return None, None
    last = previous.get(label, (None, None))
    previous[label] = (fit.params, fit.frame_params)
    return (applied_change(pred.kind, last[0], fit.params, pred.values),
            applied_change(pred.kind, last[1], fit.frame_params, pred.values))


def _warmup(pipe, width: int, height: int, report: RunReport) -> None:
    if pipe.backend is None:
        return
    try:
        pipe.backend.warmup(width, height)
    except Exception as exc:  # noqa: BLE001 - the frames will show the failure (prior fallback)
        report.note(f"backend '{getattr(pipe.backend, 'name', '?')}' failed to warm up: {type(exc).__name__}: {exc}")


def _remove_stale_outputs(out: Path) -> None:
    """Previews and plots of an earlier run into the same folder would be mistaken for this run's."""
    for sub in ("previews", "plots"):
        for png in (out / sub).glob("*.png"):
            png.unlink(missing_ok=True)
