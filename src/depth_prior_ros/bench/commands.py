"""`depth-prior bench` (writes benchmarks/RESULTS.md) and `depth-prior soak` (live node, many frames).

Both keep every rclpy process on this host: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a per-run
ROS_DOMAIN_ID (``processes.choose_domain_id``: --domain-id, else DEPTH_PRIOR_ROS_DOMAIN_ID, else random in
150-229) are set before rclpy starts, for this process and every node it launches.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..commands.arguments import integer, number, positive_seconds

SECTIONS = ("core", "stages", "transport", "backends")


def _command_error(message: str):
    from depth_prior_ros.cli import CommandError

    return CommandError(message)


def _add_ros_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domain-id", type=integer(0, 232), default=None,
                   help="ROS_DOMAIN_ID for this run (default: DEPTH_PRIOR_ROS_DOMAIN_ID, else random in 150-229)")
    p.add_argument("--fastdds-profile", default="shm",
                   help="'shm' (default): shared memory between processes, UDP on 127.0.0.1 only; a path: that "
                        "Fast DDS XML profile; '': keep FASTDDS_DEFAULT_PROFILES_FILE from the environment")
    p.add_argument("--log-dir", default=None, help="where node logs go (default: a temporary folder)")


def register(subparsers) -> None:
    b = subparsers.add_parser(
        "bench", help="benchmark the pipeline, the ROS transport and the networks; write benchmarks/RESULTS.md",
        description="Measure the core stages (ground depth, scene prior, alignment, pipeline) at 640x360, "
                    "1242x375 and 1600x900; the ROS transport floor (an echo node) against depth_node; and "
                    "PyTorch against ONNX Runtime. Every number is also given as a ratio to a baseline "
                    "measured in the same run.")
    b.add_argument("--quick", action="store_true", help="short timings and a tiny model (a smoke run for CI)")
    b.add_argument("--out", default="benchmarks/RESULTS.md", help="markdown report to write")
    b.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                   help=f"what to run, any of: {', '.join(SECTIONS)} (default: all)")
    b.add_argument("--device", default="cpu", help="device for the backends section: cpu | cuda | cuda:N")
    b.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="backends section: ssd_student:vits|vitb|vitl|tiny, jasmine (default: ViT-S and ViT-B on "
                        "CPU, all on a GPU)")
    b.add_argument("--rates", nargs="+", type=number(0.0, 1000.0, open_low=True), default=None, metavar="HZ",
                   help="publisher rates for the transport section (default 10 30; quick: 10)")
    b.add_argument("--duration", type=positive_seconds, default=None,
                   help="seconds measured per transport run (default 15; quick: 2)")
    b.add_argument("--size", default="1600x900", help="image size of the transport section (default 1600x900)")
    _add_ros_args(b)
    b.set_defaults(func=_bench)

    s = subparsers.add_parser(
        "soak", help="many frames through a live depth_node: memory, exceptions, exact drop accounting",
        description="Publish --frames image + camera_info pairs into a fresh depth_node (prior_only, its "
                    "shipped defaults) faster than it can process them, then check its resident memory growth "
                    "after warm-up, its log, and received = processed + dropped <= sent (= sent with --reliable). "
                    "Exit status 1 on failure.")
    s.add_argument("--frames", type=integer(2), default=5000)
    s.add_argument("--size", default="1600x900", help="image size WIDTHxHEIGHT (default 1600x900)")
    s.add_argument("--rate", type=number(0.0, 10000.0), default=60.0,
                   help="publisher rate in Hz (default 60, above the node's rate at 1600x900; 0: back to back)")
    s.add_argument("--qos-depth", type=integer(1, 10000), default=50,
                   help="reliable keep-last history of the publisher (and of the node with --reliable; default 50)")
    s.add_argument("--reliable", action="store_true",
                   help="reliable node input instead of the shipped best effort: then received == sent exactly")
    s.add_argument("--warmup", type=integer(0), default=None, help="warm-up frames before memory is tracked "
                                                            "(default: a tenth of the frames, 300..500)")
    s.add_argument("--max-growth-mb", type=number(0.0, open_low=True), default=50.0)
    s.add_argument("--out", default="benchmarks/SOAK.md", help="markdown report to write ('' for none)")
    _add_ros_args(s)
    s.set_defaults(func=_soak)


def _size(text: str) -> tuple[int, int]:
    from ..commands.arguments import MAX_SIDE

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise _command_error(f"size '{text[:40]}' is not WIDTHxHEIGHT, e.g. 1600x900") from None
    if w < 16 or h < 16 or w > MAX_SIDE or h > MAX_SIDE:
        raise _command_error(f"size {w}x{h} must be between 16x16 and {MAX_SIDE}x{MAX_SIDE}")
    return w, h


def _check_outputs(args) -> None:
    """The report file, the log folder and the Fast DDS profile, before any measurement runs."""
    from ..output_paths import check_output_file, check_output_folder

    if args.out:
        check_output_file(args.out)
    if args.log_dir is not None:
        check_output_folder(args.log_dir, "--log-dir")
    profile = args.fastdds_profile
    if profile and profile != "shm" and not Path(profile).is_file():
        raise _command_error(f"--fastdds-profile {profile} is neither 'shm' nor an existing file")


def _progress():
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a requirement; keep the commands usable without it
        return None
    return lambda **kw: tqdm(file=sys.stderr, **kw)


def _setup_ros(args) -> int:
    from ..processes import NodeProcessError, choose_domain_id, isolate_ros

    try:
        domain = choose_domain_id(args.domain_id)
        isolate_ros(domain, args.fastdds_profile)
    except NodeProcessError as exc:
        raise _command_error(str(exc)) from None
    return domain


def _bench(args: argparse.Namespace) -> int:
    from ..processes import NodeProcessError
    from .machine import machine_info
    from .report import render

    sections = tuple(dict.fromkeys(args.sections))
    _check_outputs(args)
    width, height = _size(args.size)
    if not args.out:
        raise _command_error("--out must name the markdown report to write")
    progress = _progress()
    out = Path(args.out)
    repo = Path(__file__).resolve().parents[3]
    core = transport = backends = None
    notes: list[str] = []
    if "core" in sections or "stages" in sections:
        from .core import run_core

        sizes = ("640x360", "1242x375", "1600x900") if "stages" in sections else ("1600x900",)
        core = run_core(sizes=sizes, quick=args.quick, progress=progress)
    if "transport" in sections:
        from .transport import run_transport

        domain = _setup_ros(args)
        rates = tuple(args.rates) if args.rates else ((10.0,) if args.quick else (10.0, 30.0))
        duration = args.duration if args.duration else (2.0 if args.quick else 15.0)
        try:
            transport = run_transport(width, height, rates=rates, duration_s=duration, quick=args.quick,
                                      log_dir=Path(args.log_dir) if args.log_dir else None, progress=progress)
        except NodeProcessError as exc:
            raise _command_error(f"transport benchmark: {exc}") from None
        notes.append(f"transport runs used ROS_DOMAIN_ID={domain}.")
    if "backends" in sections:
        from .models import run_backends

        backends = run_backends(device=args.device, quick=args.quick,
                                models=tuple(args.models) if args.models else None, progress=progress)
    info = machine_info(repo)
    command = "depth-prior bench" + (" --quick" if args.quick else "") + \
        ("" if set(sections) == set(SECTIONS) else " --sections " + " ".join(sections))
    text = render(info, core, transport, backends, args.quick, command, notes, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


def _soak(args: argparse.Namespace) -> int:
    from ..processes import NodeProcessError
    from .soak import run_soak, soak_markdown

    _check_outputs(args)
    width, height = _size(args.size)
    _setup_ros(args)
    try:
        result = run_soak(frames=args.frames, width=width, height=height, rate_hz=args.rate or None,
                          warmup_frames=args.warmup, max_growth_mb=args.max_growth_mb, qos_depth=args.qos_depth,
                          reliability="reliable" if args.reliable else "best_effort",
                          log_dir=Path(args.log_dir) if args.log_dir else None, progress=_progress())
    except (NodeProcessError, ValueError) as exc:
        raise _command_error(str(exc)) from None
    text = soak_markdown(result)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("# depth_prior_ros soak\n\nWritten by `depth-prior soak --frames "
                       f"{args.frames}`; rerun with `make soak` (what is checked: benchmarks/README.md).\n\n"
                       + text, encoding="utf-8")
        print(f"wrote {out} (node log: {result.log_path})")
    return 0 if result.ok else 1
