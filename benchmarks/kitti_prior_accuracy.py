#!/usr/bin/env python3
"""Accuracy of the embodied prior on the real KITTI raw sequence, layer by layer (after the VLE paper).

For each frame of a KITTI raw drive (``../shared/data/kitti_raw_seq``: 77 frames with LiDAR):
  - pose of the camera above the road: RANSAC plane fit to that frame's LiDAR (as ``depth-prior bag
    from-kitti --per-frame-ground`` writes it into tf);
  - road mask: the real OpenVINO ``road-segmentation-adas-0001`` network (``--road-masks openvino``,
    classes road + mark) or the LiDAR points within 0.15 m of the fitted plane, dilated to pixels
    (``--road-masks lidar``: no openvino needed, a sparser mask);
  - ground truth: the LiDAR scan projected with P_rect_02 (nearest point per pixel).
Then every layer of the prior is compared with the LiDAR depth where both exist: the fraction of those
pixels within 5% and within 10% relative error, pooled over all frames (the VLE paper's figure for road
depth is 99.33% within 10% on KITTI).

Layers: ``road`` (road-mask pixels, mode road), ``ground`` (every pixel below the horizon, no mask: cars
included), ``scene`` (mode scene with the mask and inpainting: road + vertical surfaces + inpainted, i.e.
the dense embodied scene depth), with its ``vertical`` and ``inpainted`` parts, and ``node default`` (mode
scene, no mask, inpainting: what depth_node with prior_only publishes).

    PYTHONPATH=src .venv/bin/python benchmarks/kitti_prior_accuracy.py                 # -> benchmarks/KITTI_PRIOR.md
    PYTHONPATH=src .venv/bin/python benchmarks/kitti_prior_accuracy.py --road-masks lidar --frames 10
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from depth_prior_ros.geometry import PinholeCamera, fit_ground_plane, pose_from_ground_plane  # noqa: E402
from depth_prior_ros.prior import (SOURCE_INPAINTED, SOURCE_ROAD, SOURCE_VERTICAL,  # noqa: E402
                                   GroundPriorCache, scene_prior)
from depth_prior_ros.replay.datasets import _kitti_raw  # noqa: E402
from depth_prior_ros.replay.ground_truth import lidar_depth, project_points  # noqa: E402

DRIVE = REPO.parent / "shared" / "data" / "kitti_raw_seq" / "2011_09_26" / "2011_09_26_drive_sample_sync"
SEGMENTER = REPO.parent / "shared" / "models" / "road_segmentation_adas_0001" / "road-segmentation-adas-0001.xml"
ROAD_CLASSES = (1, 3)  # road-segmentation-adas-0001: 0 background, 1 road, 2 curb, 3 mark
MAX_DEPTH = 80.0
LAYERS = ("road", "ground", "scene", "scene: vertical", "scene: inpainted", "node default", "node default: inpainted")


class OpenVinoRoadSegmenter:
    """road-segmentation-adas-0001 (OpenVINO IR): RGB uint8 (H, W, 3) -> bool road mask (H, W)."""

    def __init__(self, xml: Path):
        import openvino as ov

        core = ov.Core()
        self.model = core.compile_model(str(xml), "CPU")
        shape = self.model.input(0).get_shape()  # N, C, H, W
        self.height, self.width = int(shape[2]), int(shape[3])

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        bgr = cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (self.width, self.height),
                         interpolation=cv2.INTER_LINEAR)
        blob = bgr.transpose(2, 0, 1)[None].astype(np.float32)  # 0-255, NCHW
        probs = self.model(blob)[self.model.output(0)][0]  # (4, h, w)
        road = np.isin(np.argmax(probs, axis=0), ROAD_CLASSES).astype(np.uint8)
        return cv2.resize(road, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def lidar_road_mask(points: np.ndarray, plane, T_camera_from_lidar: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Pixels of LiDAR points within 0.15 m of the ground plane, grown by 2 px: bool (H, W)."""
    import cv2

    on_ground = np.abs(plane.distance(points[:, :3])) < 0.15
    rows, cols, _ = project_points(points[on_ground, :3], T_camera_from_lidar, camera)
    mask = np.zeros((camera.height, camera.width), np.uint8)
    mask[rows, cols] = 1
    return cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)


@dataclass
class LayerCount:
    pixels: int = 0
    within_5: int = 0
    within_10: int = 0

    def add(self, prior: np.ndarray, gt: np.ndarray, where: np.ndarray) -> None:
        sel = where & np.isfinite(gt) & np.isfinite(prior)
        rel = np.abs(prior[sel] - gt[sel]) / gt[sel]
        self.pixels += int(sel.sum())
        self.within_5 += int(np.count_nonzero(rel < 0.05))
        self.within_10 += int(np.count_nonzero(rel < 0.10))

    def percent(self, n: int) -> float:
        return 100.0 * n / self.pixels if self.pixels else float("nan")


@dataclass
class Accuracy:
    frames: int = 0
    layers: dict[str, LayerCount] = field(default_factory=lambda: {name: LayerCount() for name in LAYERS})

    def rows(self) -> list[dict]:
        return [{"layer": name, "pixels": c.pixels, "within_5_pct": round(c.percent(c.within_5), 2),
                 "within_10_pct": round(c.percent(c.within_10), 2)} for name, c in self.layers.items()]


def evaluate(drive: Path, road_masks: str, frames: int | None, progress: bool = True) -> Accuracy:
    rig, sensor_frames, total = _kitti_raw(drive, frames, 0)
    camera = PinholeCamera(rig.K, rig.width, rig.height)
    T_cl = rig.T_camera_from_lidar
    segment = OpenVinoRoadSegmenter(SEGMENTER) if road_masks == "openvino" else None
    cache = GroundPriorCache(max_depth=MAX_DEPTH)
    acc = Accuracy()
    if progress:
        from tqdm import tqdm

        sensor_frames = tqdm(sensor_frames, total=total, desc="KITTI frames", unit="frame", file=sys.stderr)
    for frame in sensor_frames:
        points = frame.lidar[:, :3].astype(np.float64)
        plane = fit_ground_plane(points, threshold=0.1)
        T = pose_from_ground_plane(plane, T_cl)
        gt = lidar_depth(points, T_cl, camera)
        gt[~(gt <= MAX_DEPTH)] = np.nan
        road = segment(frame.image) if segment is not None else lidar_road_mask(points, plane, T_cl, camera)
        geometry = cache.get(camera, T)
        kw = dict(max_depth=MAX_DEPTH, ground=geometry.ground, rays_ground=geometry.rays_ground)
        road_prior = scene_prior(camera, T, road, mode="road", **kw)
        ground_prior = scene_prior(camera, T, None, mode="ground", **kw)
        scene = scene_prior(camera, T, road, mode="scene", inpaint=True, **kw)
        node = scene_prior(camera, T, None, mode="scene", inpaint=True, **kw)
        layers = acc.layers
        layers["road"].add(road_prior.depth, gt, road_prior.source == SOURCE_ROAD)
        layers["ground"].add(ground_prior.depth, gt, ground_prior.valid)
        layers["scene"].add(scene.depth, gt, scene.valid)
        layers["scene: vertical"].add(scene.depth, gt, scene.source == SOURCE_VERTICAL)
        layers["scene: inpainted"].add(scene.depth, gt, scene.source == SOURCE_INPAINTED)
        layers["node default"].add(node.depth, gt, node.valid)
        layers["node default: inpainted"].add(node.depth, gt, node.source == SOURCE_INPAINTED)
        acc.frames += 1
    return acc


def markdown(acc: Accuracy, road_masks: str, drive: Path) -> str:
    source = {"openvino": "OpenVINO road-segmentation-adas-0001 (classes road + mark)",
              "lidar": "LiDAR ground points (within 0.15 m of the fitted plane, grown by 2 px)"}[road_masks]
    lines = ["# Embodied prior accuracy on KITTI raw", "",
             f"Written by `benchmarks/kitti_prior_accuracy.py --road-masks {road_masks}` on {acc.frames} frames of "
             f"`{drive.relative_to(REPO.parent) if drive.is_relative_to(REPO.parent) else drive}`. "
             f"Road masks: {source}. Pose: per-frame LiDAR ground-plane fit. Ground truth: LiDAR projected "
             f"with P_rect_02, depth <= {MAX_DEPTH:g} m. Per layer: LiDAR pixels the layer covers and the share of "
             "them within 5% / 10% relative depth error (pooled over frames).", "",
             "| layer | LiDAR pixels | within 5% | within 10% |", "|---|---:|---:|---:|"]
    for row in acc.rows():
        lines.append(f"| {row['layer']} | {row['pixels']} | {row['within_5_pct']:.2f}% | {row['within_10_pct']:.2f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--drive", type=Path, default=DRIVE, help="KITTI raw drive folder (image_02/, velodyne_points/)")
    p.add_argument("--road-masks", choices=("openvino", "lidar"), default="openvino")
    p.add_argument("--frames", type=int, default=None, help="first N frames only")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "KITTI_PRIOR.md"), help="markdown to write ('' for none)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if not args.drive.is_dir():
        print(f"KITTI raw drive {args.drive} does not exist", file=sys.stderr)
        return 2
    if args.road_masks == "openvino" and not SEGMENTER.exists():
        print(f"road segmenter {SEGMENTER} does not exist (use --road-masks lidar)", file=sys.stderr)
        return 2
    acc = evaluate(args.drive, args.road_masks, args.frames)
    text = markdown(acc, args.road_masks, args.drive)
    print(json.dumps(acc.rows(), indent=1) if args.json else text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
