"""`depth-prior prior`: the embodied ground prior for one camera and pose, written as .npy and a PNG.

Useful to check a camera's calibration and mounting before driving: the road should come out as a smooth
gradient that ends at the horizon, and the numbers under the cursor should match a tape measure.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import degrees, number, path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prior", help="compute the ground/scene prior for a camera_info YAML and a static pose",
                       description="Compute the metric ground prior for a camera (ROS camera_info YAML) "
                                   "mounted at a static height/pitch/roll above a flat road.")
    p.add_argument("camera_info", type=path_arg, help="camera_info YAML (camera_calibration format)")
    p.add_argument("--height", type=number(0.0, 100.0, open_low=True), required=True,
                   help="camera height above the road in metres")
    p.add_argument("--pitch-deg", type=degrees, default=0.0, help="downward tilt in degrees")
    p.add_argument("--roll-deg", type=degrees, default=0.0)
    p.add_argument("--max-depth", type=number(1.0, 1e4, open_low=True), default=80.0,
                   help="metres; the PNG's colours run from 1 m to this")
    p.add_argument("--road-mask", type=path_arg, help="optional PNG, nonzero = road (enables vertical surfaces)")
    p.add_argument("--out", type=path_arg, default=Path("prior_out"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import CommandError
    from ..output_paths import check_output_folder
    from ..geometry import CameraModelError, PinholeCamera, PoseError, pose_from_static, summarize_pose
    from ..prior import scene_prior

    if not args.camera_info.is_file():
        raise CommandError(f"camera_info file {args.camera_info} does not exist")
    check_output_folder(args.out)
    try:
        camera = PinholeCamera.from_yaml(args.camera_info)
        T = pose_from_static(args.height, np.radians(args.pitch_deg), np.radians(args.roll_deg))
        mask = None
        if args.road_mask is not None:
            import cv2

            mask = cv2.imread(str(args.road_mask), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise CommandError(f"road mask {args.road_mask} is not a readable image")
        prior = scene_prior(camera, T, mask, mode="scene", max_depth=args.max_depth)
    except (CameraModelError, PoseError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "prior_depth.npy", prior.depth)
    _write_png(args.out / "prior_depth.png", prior.depth, args.max_depth)
    cover = ", ".join(f"{k} {v:.0%}" for k, v in prior.coverage().items() if v > 0)
    print(f"camera {camera.width}x{camera.height}, {summarize_pose(T)}")
    print(f"prior coverage: {cover}; nearest road {np.nanmin(prior.depth):.2f} m")
    print(f"wrote {args.out / 'prior_depth.npy'} and {args.out / 'prior_depth.png'}")
    return 0


def _write_png(path: Path, depth, max_depth: float) -> None:
    import cv2
    import numpy as np

    from ..colorize import colorize_depth

    rgb = colorize_depth(depth, 1.0, max_depth)
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
