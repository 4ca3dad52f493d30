"""benchmarks/REAL_POSE.md: per-frame ground pose and fusion on the real KITTI raw sequence (issue #12).

    python -m depth_prior_ros.bench.real_pose              # ../shared data and models, ~20 min on 2 cores
    python -m depth_prior_ros.bench.real_pose --frames 10  # a quick look

The static bag (``depth-prior bag from-kitti``: the ground fitted to the first scan, on /tf_static) is
what the pipeline gets; the per-frame LiDAR ground plane (the ``--per-frame-ground`` bag's tf) is the
true pose, used only to score. Each shared network runs in-process through ``DepthPipeline`` with the
road segmenter on every frame, with and without ``pose_refinement`` and ``fusion``; per configuration:
- the embodied road figure: LiDAR points in the segmenter's road mask whose depth is within 5% / 10%,
  for the pipeline's scene prior (inpaint off: the layer the prior covers, at the refined pose when
  refining) and for the published depth;
- AbsRel / d1 of the published depth against the LiDAR (KITTI protocol, Garg crop, per-frame means);
- the refined pitch and roll against the LiDAR planes' (RMS, degrees), next to the static pose's.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .real_data import SHARED, REPO, Paths, prepare

THRESHOLDS = (0.05, 0.10)


@dataclass
class Network:
    label: str
    backend: str
    weights: str
    card: str
    kind: str


def networks(p: Paths) -> list[Network]:
    scale_card = p.work / "fast_depth_224.scale_depth.card.json"
    card = json.loads((p.cards / "fast_depth_224.card.json").read_text())
    scale_card.write_text(json.dumps(dict(card, output_kind="scale_depth")))
    return [Network("PyDNet", "tflite", str(p.models / "pydnet_kitti_tflite" / "pydnet_model.tflite"),
                    str(p.cards / "pydnet_model.card.json"), "affine_disparity"),
            Network("FastDepth as scale_depth", "tflite",
                    str(p.models / "fastdepth_nyu_int8_tflite" / "fast_depth_224.tflite"), str(scale_card),
                    "scale_depth")]


SETTINGS = (("static pose, unfused", False, "off"), ("static pose, fused", False, "confidence"),
            ("static pose + refinement, unfused", True, "off"), ("static pose + refinement, fused", True, "confidence"))


def within(depth: np.ndarray, gt: np.ndarray, select: np.ndarray) -> tuple[int, list[int]]:
    d, g = depth[select], gt[select]
    with np.errstate(invalid="ignore"):
        err = np.abs(d - g) / g
    return int(select.sum()), [int(np.count_nonzero(err < t)) for t in THRESHOLDS]


def run_config(frames, true_poses, network: Network, refine: bool, fusion: str, segmenter) -> dict:
    from ..ground_pose import offset_pose, pose_angles
    from ..models.registry import create_backend
    from ..pipeline import DepthPipeline, PipelineConfig
    from ..replay.metrics import EvalProtocol, score_frame

    from ..ground_pose import PoseRefineConfig

    backend = create_backend(network.backend, weights=network.weights, card=network.card)
    # affine_disparity (PyDNet) refines only with pose_refine_affine: it is switched on for its rows.
    config = PipelineConfig(pose_refinement=refine, fusion=fusion, inpaint=False,
                            pose=PoseRefineConfig(affine=network.kind == "affine_disparity"))
    pipe = DepthPipeline(backend, config, segmenter)
    protocol = EvalProtocol.kitti(scaling="metric")
    counts = {"prior": [0, 0, 0], "published": [0, 0, 0]}
    scores, pitch_err, roll_err, static_pitch, static_roll = [], [], [], [], []
    for frame, T_true in zip(frames, true_poses):
        result = pipe.process(frame.image, frame.camera, frame.T_ground_from_camera)
        gt = frame.gt
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(gt) & (gt > 1e-3) & (gt < 80.0)
        road = valid & result.road_mask
        for name, depth in (("prior", result.prior.depth), ("published", result.depth)):
            n, w = within(depth, gt, road)
            counts[name] = [a + b for a, b in zip(counts[name], [n, *w])]
        scores.append(score_frame(result.depth, gt, protocol).metrics)
        offsets = result.pose_offsets
        T_used = offset_pose(frame.T_ground_from_camera, offsets) if offsets is not None else frame.T_ground_from_camera
        _, p_used, r_used, _ = pose_angles(T_used)
        _, p_true, r_true, _ = pose_angles(T_true)
        _, p_static, r_static, _ = pose_angles(frame.T_ground_from_camera)
        pitch_err.append(np.degrees(p_used - p_true))
        roll_err.append(np.degrees(r_used - r_true))
        static_pitch.append(np.degrees(p_static - p_true))
        static_roll.append(np.degrees(r_static - r_true))
    rms = (lambda e: float(np.sqrt(np.mean(np.square(e)))))
    out = {f"{name}_within_{round(t * 100)}": 100.0 * c[i + 1] / max(c[0], 1)
           for name, c in counts.items() for i, t in enumerate(THRESHOLDS)}
    out.update(road_points=counts["prior"][0], abs_rel=float(np.mean([s["abs_rel"] for s in scores])),
               delta1=float(np.mean([s["delta1"] for s in scores])), pitch_rms=rms(pitch_err),
               roll_rms=rms(roll_err), static_pitch_rms=rms(static_pitch), static_roll_rms=rms(static_roll),
               frames=len(scores))
    return out


def markdown(results: dict, frames: int, command: str) -> str:
    lines = [f"# Per-frame ground pose and fusion on real data: KITTI raw, {frames} frames", "",
             f"Written by `{command}` (module docstring of `depth_prior_ros/bench/real_pose.py`). The pipeline "
             "gets the static mount pose (the ground fitted to the first LiDAR scan) and the road segmenter "
             "(`road-segmentation-adas-0001`) on every frame; the per-frame LiDAR ground plane is the true pose "
             "and only scores. The issue's reference for the prior's road layer: static pose 93.4% within 10%, "
             "true per-frame pose 98.2%.", "",
             "What each prediction kind makes observable (src/depth_prior_ros/ground_pose.py): `scale_depth` "
             "gives pitch and roll (the height trades off with the scale); `affine_disparity` leaves the pitch "
             "to the shift on road pixels of one frame; "
             "`metric_depth` would give pitch, roll and height. PyDNet's refinement rows run with `pose_refine_affine` "
             "(off by default): the plane through its stream-filtered alignment.", "",
             "| network | configuration | prior road within 5% / 10% | published road within 5% / 10% | AbsRel | d1 "
             "| pitch RMS vs LiDAR (deg) | roll RMS vs LiDAR (deg) |", "|---|---|---|---|---|---|---|---|"]
    for (net, setting), r in results.items():
        lines.append(f"| {net} | {setting} | {r['prior_within_5']:.1f} / {r['prior_within_10']:.1f} | "
                     f"{r['published_within_5']:.1f} / {r['published_within_10']:.1f} | {r['abs_rel']:.3f} | "
                     f"{r['delta1']:.3f} | {r['pitch_rms']:.3f} | {r['roll_rms']:.3f} |")
    first = next(iter(results.values()))
    refined = {k: r for k, r in results.items() if "refinement" in k[1]}
    best_key = max(refined, key=lambda k: refined[k]["prior_within_10"]) if refined else None
    if best_key is not None:
        best = refined[best_key]
        verdict = "reaches" if best["prior_within_10"] >= 96.0 else "does **not** reach"
        lines += ["", f"Issue target (the prior's road layer >= 96% within 10% with the static pose plus the "
                  f"refinement): the best refined run, {best_key[0]} ({best_key[1]}), {verdict} it: "
                  f"{best['prior_within_10']:.1f}% (static pose {first['prior_within_10']:.1f}%)."]
    lines += ["", f"The static pose itself is {first['static_pitch_rms']:.3f} deg (pitch) and "
              f"{first['static_roll_rms']:.3f} deg (roll) RMS off the LiDAR planes; road points scored: "
              f"{first['road_points']}.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m depth_prior_ros.bench.real_pose",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "kitti_raw_seq" / "2011_09_26")
    parser.add_argument("--models", type=Path, default=SHARED / "models")
    parser.add_argument("--cards", type=Path, default=REPO / "tests" / "cards")
    parser.add_argument("--work", type=Path, default=Path("real_data_work"), help="bags (kept, shared with real_data)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "REAL_POSE.md")
    parser.add_argument("--frames", type=int, help="only the first N frames")
    args = parser.parse_args(argv)
    from ..models.segmentation import load_segmenter
    from ..replay.frames import FrameOptions, image_poses, iter_frames

    prepared = prepare(args, "real_pose")
    if prepared is None:
        return 2
    p, bags = prepared
    options = FrameOptions(max_frames=args.frames)
    frames = list(iter_frames(bags["static"], options))
    true_poses = image_poses(bags["per-frame"], options)[:len(frames)]
    segmenter = load_segmenter(str(p.road), str(p.road_card))
    results = {}
    for network in networks(p):
        for setting, refine, fusion in SETTINGS:
            results[(network.label, setting)] = r = run_config(frames, true_poses, network, refine, fusion, segmenter)
            print(f"{network.label} / {setting}: {json.dumps(r)}", flush=True)
    command = "python -m depth_prior_ros.bench.real_pose" + (f" --frames {args.frames}" if args.frames else "")
    args.out.write_text(markdown(results, len(frames), command), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
