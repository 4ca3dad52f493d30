"""CLI: `depth-prior replay`, `depth-prior bag from-kitti|from-nuscenes|synth`, `depth-prior demo`.

Heavy imports (rosbags, rclpy, matplotlib, the synth renderer) happen inside the command functions.
Every user error becomes CommandError: one sentence, exit status 2.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..commands.arguments import degrees, integer, number, path_arg, positive_seconds
from ..output_paths import check_output_folder
from ..parameters import DEPTH_NODE, PARAMS, ParameterError, check_known_names

PROTOCOLS = ("auto", "default", "kitti", "nuscenes", "robotcar")
# Rendered bags: at most this many frames per condition, at most this many pixels a side.
MAX_FRAMES = 100_000
render_side = integer(16, 4096)


def register(sub: argparse._SubParsersAction) -> None:
    _register_replay(sub)
    _register_bag(sub)
    _register_demo(sub)


# --------------------------------------------------------------------------- replay
def _register_replay(sub) -> None:
    p = sub.add_parser("replay", help="replay bags through the depth pipeline and score it",
                       description="Replay rosbag2 (MCAP/SQLite3) or ROS 1 bags through the depth pipeline "
                                   "(offline, or --live through the ROS node) and write report.md, metrics.json, "
                                   "frames.csv, plots, previews and an output MCAP.")
    p.add_argument("bags", nargs="+", type=path_arg, metavar="BAG")
    p.add_argument("--out", type=path_arg, required=True, help="output folder for the report")
    g = p.add_argument_group("backends")
    g.add_argument("--backend", nargs="+", default=["prior_only"], metavar="NAME",
                   help="backend(s) to compare side by side (registry names)")
    g.add_argument("--weights", nargs="+", default=[], metavar="PATH",
                   help="weights per backend, in the order of --backend ('-' for none)")
    g.add_argument("--backend-options", default="{}", metavar="JSON",
                   help="JSON object of backend-specific options (given to every backend with a network)")
    g.add_argument("--device", help=f"default: the node's ({PARAMS['device'].default})")
    g.add_argument("--dtype", choices=PARAMS["dtype"].choices, help=f"default: the node's ({PARAMS['dtype'].default})")
    g.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="depth_node parameter override (NODES.md names; YAML value), e.g. max_depth=50")
    g.add_argument("--use-road-mask", action="store_true", help="feed the bag's road mask to the pipeline")
    t = p.add_argument_group("topics and frames (default: the bag's hints, else a unique topic of the type)")
    t.add_argument("--image-topic")
    t.add_argument("--camera-info-topic")
    t.add_argument("--gt-topic", help="ground-truth depth image topic (32FC1 m or 16UC1 mm)")
    t.add_argument("--lidar-topic", help="PointCloud2 topic projected as ground truth")
    t.add_argument("--road-mask-topic")
    t.add_argument("--labels-topic")
    t.add_argument("--gt-source", default="auto", choices=("auto", "depth", "lidar", "none"))
    t.add_argument("--ground-frame", help="tf frame whose z = 0 plane is the road (default base_footprint)")
    t.add_argument("--fixed-frame", help="world-fixed tf frame for LiDAR motion compensation (e.g. odom, map)")
    t.add_argument("--pose", default="tf", choices=("tf", "static", "lidar"),
                   help="camera pose above the road: tf lookup, static values, or a LiDAR ground fit per frame")
    t.add_argument("--camera-height", type=number(0.0, 100.0, open_low=True), default=1.5,
                   help="--pose static: metres above the road")
    t.add_argument("--camera-pitch-deg", type=degrees, default=0.0)
    t.add_argument("--camera-roll-deg", type=degrees, default=0.0)
    t.add_argument("--sync-tolerance", type=number(0.0, 60.0), default=0.05,
                   help="seconds between an image and its GT")
    t.add_argument("--condition", nargs="+", help="condition tag for all bags, or one per bag")
    t.add_argument("--max-frames", type=integer(1), help="at most this many frames per bag")
    t.add_argument("--stride", type=integer(1), default=1, help="use every n-th image")
    e = p.add_argument_group("evaluation protocol")
    e.add_argument("--protocol", default="auto", choices=PROTOCOLS,
                   help="preset: kitti (80 m, Garg crop), nuscenes (0.1-80 m), robotcar (0.1-50 m); auto = bag hint")
    e.add_argument("--min-depth", type=number(0.0, 1e4))
    e.add_argument("--max-depth", type=number(0.0, 1e4, open_low=True), help="ground-truth depth cap")
    e.add_argument("--crop", choices=("none", "garg", "eigen"))
    e.add_argument("--scaling", nargs="+", default=["metric", "median"],
                   choices=("metric", "prior", "median", "lstsq", "disparity_lstsq"),
                   help="scaling modes; the first one is the headline table")
    e.add_argument("--embodied", action="store_true",
                   help="add the VLE embodied-depth table: LiDAR points within 5%% / 10%% on the road mask and "
                        "where the depth has a value (run the prior with --param inpaint=false for its layers)")
    o = p.add_argument_group("run")
    o.add_argument("--live", action="store_true", help="publish through rclpy to a depth_node subprocess")
    o.add_argument("--rate", type=number(0.0, 1e4, open_low=True),
                   help="live: publish at this rate (Hz) instead of the recorded timing")
    o.add_argument("--lockstep", action="store_true", help="live: wait for each depth image before the next frame")
    o.add_argument("--domain-id", type=integer(0, 232),
                   help="live: ROS_DOMAIN_ID (default $DEPTH_PRIOR_ROS_DOMAIN_ID or 150-229)")
    o.add_argument("--frame-timeout", type=positive_seconds, default=5.0,
                   help="live: seconds before a frame counts as dropped")
    o.add_argument("--startup-timeout", type=positive_seconds, default=60.0)
    o.add_argument("--previews", type=integer(0, 1000), default=1, help="preview PNGs per backend and condition")
    o.add_argument("--no-bag", action="store_true", help="do not write the output MCAP")
    o.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_replay_command)


def _protocol(args, bags: list[Path]):
    from .bag_io import BagError, BagReader
    from .frames import bag_hints
    from .metrics import EvalProtocol, MetricsError

    name = args.protocol
    if name == "auto":
        name = "default"
        try:
            with BagReader(bags[0]) as bag:
                name = bag_hints(bag).get("protocol", "default")
        except BagError:
            pass  # the replay reports the bag error itself
        if name not in PROTOCOLS:
            name = "default"
    base = {"default": EvalProtocol(), "kitti": EvalProtocol.kitti(), "nuscenes": EvalProtocol.nuscenes(),
            "robotcar": EvalProtocol.robotcar()}[name]
    overrides = {k: v for k, v in (("min_depth", args.min_depth), ("max_depth", args.max_depth), ("crop", args.crop))
                 if v is not None}
    try:
        return EvalProtocol(**{**base.__dict__, **overrides}), name
    except MetricsError as exc:
        raise _error(str(exc)) from exc


def _backends(args) -> list:
    from .config import BackendSpec

    try:
        options = json.loads(args.backend_options)
    except json.JSONDecodeError as exc:
        raise _error(f"--backend-options is not valid JSON ({exc.msg} at position {exc.pos})") from exc
    if not isinstance(options, dict):
        raise _error("--backend-options must be a JSON object like {\"key\": value}")
    if len(args.weights) > len(args.backend):
        raise _error(f"{len(args.weights)} --weights for {len(args.backend)} --backend; give one per backend")
    specs, seen = [], {}
    for i, name in enumerate(args.backend):
        weights = args.weights[i] if i < len(args.weights) else ""
        weights = "" if weights in ("-", "none") else weights
        seen[name] = seen.get(name, 0) + 1
        label = name if args.backend.count(name) == 1 else f"{name}_{seen[name]}"
        specs.append(BackendSpec(name, weights, options if name != "prior_only" else {}, args.device, args.dtype,
                                 label))
    return specs


def _node_params(args) -> dict:
    import yaml

    params = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise _error(f"--param '{item}' is not NAME=VALUE")
        try:
            params[name.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise _error(f"--param '{item}' has a value that is not YAML ({problem})") from None
    try:
        check_known_names(params, DEPTH_NODE)
    except ParameterError as exc:
        raise _error(f"--param: {exc}") from None
    if args.use_road_mask:
        params["use_road_mask"] = True
    return params


def run_replay_command(args: argparse.Namespace) -> int:
    from .frames import FrameOptions, ReplayTopics
    from .replay import ReplayConfig, ReplayError, run_replay
    from .report import LOST_TO_DAMAGE

    protocol, protocol_name = _protocol(args, args.bags)
    try:
        frames = FrameOptions(
            topics=ReplayTopics(args.image_topic, args.camera_info_topic, args.gt_topic, args.lidar_topic,
                                args.road_mask_topic, args.labels_topic),
            ground_frame=args.ground_frame, pose=args.pose, camera_height=args.camera_height,
            camera_pitch_deg=args.camera_pitch_deg, camera_roll_deg=args.camera_roll_deg, gt_source=args.gt_source,
            fixed_frame=args.fixed_frame, sync_tolerance=args.sync_tolerance, max_frames=args.max_frames,
            stride=args.stride)
        config = ReplayConfig(frames=frames, backends=_backends(args), node_params=_node_params(args),
                              protocol=protocol, scalings=tuple(dict.fromkeys(args.scaling)),
                              conditions=args.condition, previews_per_condition=args.previews,
                              embodied=args.embodied,
                              write_bag=not args.no_bag, progress=not args.no_progress, live=args.live,
                              rate=args.rate, lockstep=args.lockstep, domain_id=args.domain_id,
                              startup_timeout=args.startup_timeout, frame_timeout=args.frame_timeout)
    except ValueError as exc:
        raise _error(str(exc)) from exc
    try:
        report = run_replay(args.bags, args.out, config)
    except ReplayError as exc:
        raise _error(f"{exc} (partial report in {args.out})") from exc
    print(f"protocol: {protocol_name} ({protocol.min_depth:g}-{protocol.max_depth:g} m, crop {protocol.crop})")
    print(report.console_summary())
    print(f"\nreport: {Path(args.out) / 'report.md'}")
    damaged = report.damaged_bags()
    if damaged:
        bag, entry = next(iter(damaged.items()))
        lost = len({(r.bag, r.index) for r in report.records if r.source == LOST_TO_DAMAGE})
        raise _error(f"bag {bag} is damaged: {entry['detail']}; {lost} frame(s) dropped, "
                     f"the rest scored in {Path(args.out) / 'report.md'}")
    return 0


# --------------------------------------------------------------------------- bag
def _register_bag(sub) -> None:
    p = sub.add_parser("bag", help="make rosbag2 MCAP bags from datasets or synthetic scenes")
    bag_sub = p.add_subparsers(dest="bag_command", metavar="SOURCE")
    bag_sub.required = True

    k = bag_sub.add_parser("from-kitti", help="KITTI sample/object/raw folder -> bag",
                           description="Convert a KITTI folder (the shared sample with image.png, lidar_points.npy "
                                       "and calib.json; the object layout; a raw drive; or the date folder of a raw "
                                       "download, whose drive it names) to a rosbag2 MCAP with image, camera_info, "
                                       "LiDAR and /tf_static (base_footprint from a LiDAR ground fit).")
    k.add_argument("folder", type=path_arg)
    k.add_argument("--drive", help="raw date folder: the drive folder to convert (default: the first by name)")
    k.add_argument("--out", type=path_arg, required=True, help="output bag folder")
    k.add_argument("--max-frames", type=integer(1))
    k.add_argument("--start", type=integer(0), default=0)
    k.add_argument("--per-frame-ground", action="store_true",
                   help="fit the ground in every frame and write it to /tf (default: first frame, /tf_static)")
    k.add_argument("--no-progress", action="store_true")
    k.set_defaults(func=run_from_kitti)

    n = bag_sub.add_parser("from-nuscenes", help="nuScenes folder -> one bag per scene",
                           description="Convert a nuScenes folder (samples/CAM_FRONT, samples/LIDAR_TOP and the "
                                       "JSON tables) to one rosbag2 MCAP per scene, key frames only.")
    n.add_argument("root", type=path_arg)
    n.add_argument("--out", type=path_arg, required=True, help="output folder (one bag per scene inside)")
    n.add_argument("--version", help="table folder name, e.g. v1.0-mini (default: the only one)")
    n.add_argument("--scene", nargs="+", help="scene names to convert (default all)")
    n.add_argument("--camera", default="CAM_FRONT")
    n.add_argument("--lidar", default="LIDAR_TOP")
    n.add_argument("--max-frames", type=integer(1))
    n.add_argument("--ground", default="lidar", choices=("lidar", "ego"),
                   help="ground frame from a LiDAR ground fit, or the ego frame itself")
    n.add_argument("--no-progress", action="store_true")
    n.set_defaults(func=run_from_nuscenes)

    s = bag_sub.add_parser("synth", help="synthetic driving bags with exact ground truth, one per condition")
    s.add_argument("--out", type=path_arg, required=True, help="output folder (one bag per condition inside)")
    s.add_argument("--conditions", nargs="+", default=["day", "night", "rain"])
    s.add_argument("--frames", type=integer(1, MAX_FRAMES), default=10)
    s.add_argument("--preset", default="small", help="synth camera preset (small, tiny, nuscenes, kitti)")
    s.add_argument("--width", type=render_side)
    s.add_argument("--height", type=render_side)
    s.add_argument("--seed", type=integer(0, 2**32 - 1), default=0)
    s.add_argument("--fps", type=number(0.0, 1000.0, open_low=True), default=10.0)
    s.add_argument("--no-road-mask", action="store_true")
    s.add_argument("--no-lidar", action="store_true")
    s.add_argument("--lidar-full", action="store_true",
                   help="keep LiDAR returns the camera cannot see (parallax); default: only those it sees")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=run_synth_bags)


def run_from_kitti(args) -> int:
    from .bag_io import BagError
    from .datasets import DatasetError, convert_kitti

    check_output_folder(args.out)
    try:
        summary = convert_kitti(args.folder, args.out, args.max_frames, args.start, args.per_frame_ground,
                                progress=not args.no_progress, drive=args.drive)
    except (DatasetError, BagError) as exc:
        raise _error(str(exc)) from exc
    if summary.get("drive"):
        print(f"drive {summary['drive']}: {summary['drives']}")
    print(f"wrote {summary['bag']}: {summary['frames']} frame(s), KITTI {summary['layout']} layout, "
          f"camera {summary['pose']}")
    return 0


def run_from_nuscenes(args) -> int:
    from .bag_io import BagError
    from .datasets import DatasetError, convert_nuscenes

    check_output_folder(args.out)
    try:
        results = convert_nuscenes(args.root, args.out, args.version, args.scene, args.camera, args.lidar,
                                   args.max_frames, args.ground, progress=not args.no_progress)
    except (DatasetError, BagError) as exc:
        raise _error(str(exc)) from exc
    for r in results:
        print(f"wrote {r['bag']}: scene {r['scene']} ({r['condition']}), {r['frames']} frame(s), camera {r['pose']}")
    return 0


def run_synth_bags(args) -> int:
    from .bag_io import BagError
    from .synth_bag import SynthBagSpec, write_synth_bags

    check_output_folder(args.out)
    spec = SynthBagSpec(frames=args.frames, preset=args.preset, width=args.width, height=args.height,
                        seed=args.seed, fps=args.fps, road_mask=not args.no_road_mask, lidar=not args.no_lidar,
                        lidar_visible_only=not args.lidar_full)
    try:
        made = write_synth_bags(args.out, args.conditions, spec, progress=not args.no_progress,
                                overwrite=args.overwrite)
    except (BagError, ValueError) as exc:
        raise _error(str(exc)) from exc
    for m in made:
        print(f"wrote {m['bag']}: {m['frames']} frame(s), {m['condition']}, {m['width']}x{m['height']}")
    return 0


# --------------------------------------------------------------------------- demo
def _register_demo(sub) -> None:
    p = sub.add_parser("demo", help="synthetic day/night/rain bags -> live depth node -> metrics and report",
                       description="Render a small synthetic driving bag per condition (day, night, rain), run the "
                                   "live ROS 2 depth node on it with the default backend(s), evaluate against the "
                                   "exact ground truth and write report.md, plots, previews and an output MCAP.")
    p.add_argument("--out", type=path_arg, default=Path("demo_out"))
    p.add_argument("--frames", type=integer(1, MAX_FRAMES), default=8, help="frames per condition")
    p.add_argument("--width", type=render_side, default=640)
    p.add_argument("--height", type=render_side, default=360)
    p.add_argument("--conditions", nargs="+", default=["day", "night", "rain"])
    p.add_argument("--seed", type=integer(0, 2**32 - 1), default=0)
    p.add_argument("--rate", type=number(0.0, 1000.0, open_low=True), default=10.0,
                   help="publish rate (Hz); each frame waits for its depth")
    p.add_argument("--offline", action="store_true", help="run the pipeline in-process instead of the ROS node")
    p.add_argument("--domain-id", type=integer(0, 232),
                   help="ROS_DOMAIN_ID (default $DEPTH_PRIOR_ROS_DOMAIN_ID or 150-229)")
    p.add_argument("--backend", nargs="+", help="override the demo's backends (registry names)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_demo_command)


def run_demo_command(args) -> int:
    from .bag_io import BagError
    from .demo import DemoOptions, run_demo
    from .config import BackendSpec, ReplayError

    check_output_folder(args.out)
    backends = [BackendSpec(name) for name in args.backend] if args.backend else None
    options = DemoOptions(out=args.out, frames=args.frames, width=args.width, height=args.height,
                          conditions=tuple(args.conditions), seed=args.seed, live=not args.offline, rate=args.rate,
                          domain_id=args.domain_id, backends=backends, progress=not args.no_progress)
    try:
        run_demo(options)
    except (ReplayError, BagError, ValueError) as exc:
        raise _error(f"{exc} (partial results in {args.out})") from exc
    return 0


def _error(message: str):
    from ..errors import CommandError

    return CommandError(message)
