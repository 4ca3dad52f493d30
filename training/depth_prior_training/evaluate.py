"""Evaluate a student through the node's pipeline (prior alignment) on held-out synthetic scenes.

Each frame: a held-out seed rendered by synth in day, night and rain (exact depth), run ``DepthPipeline`` with ``prior_only`` and with ``ssd_student`` (aligned to
the embodied prior), and score both against the exact depth with ``replay.metrics`` (metric scaling,
depth cap 80 m). Returns {backend: {condition: mean metrics}}.
"""
from __future__ import annotations

import numpy as np


def evaluation_frames(seed: int, conditions, width: int, height: int, preset: str = "tiny"):
    """{condition: (image, depth, camera, T_ground_from_camera)} of one held-out scene.

    With synth's ``make_frame`` each condition is rendered by synth itself (night with real light
    sources from the renderer), i.e. what the project's demo bags contain; otherwise the day render is
    translated with the classical translator.
    """
    try:
        from depth_prior_ros.synth.frames import make_frame
    except ImportError:
        make_frame = None
    out = {}
    if make_frame is not None:
        for condition in conditions:
            f = make_frame(preset, condition, int(seed), with_lidar=False)
            out[condition] = (f.image, f.depth, f.camera, f.T_ground_from_camera)
        return out
    from depth_prior_ros.geometry.camera import PinholeCamera

    from . import synthetic

    translate = synthetic.classical_translator()
    views, K, _ = synthetic.render_sequence(int(seed), width, height, 1)
    view = views[0]
    camera = PinholeCamera(K=K, width=width, height=height)
    T = synthetic.ground_pose_for(int(seed))
    for condition in conditions:
        image = view.image if condition == "day" else translate(view.image, condition, view.depth, view.labels,
                                                                int(seed) * 1000 + 1)
        out[condition] = (image, view.depth, camera, T)
    return out


def evaluate_synthetic(weights: str, seeds, width: int = 320, height: int = 180,
                       conditions=("day", "night", "rain"), progress: bool = True, preset: str = "tiny") -> dict:
    from tqdm import tqdm

    from depth_prior_ros.models import create_backend
    from depth_prior_ros.pipeline import DepthPipeline
    from depth_prior_ros.replay.metrics import EvalProtocol, mean_metrics, score_frame

    backends = {"prior_only": create_backend("prior_only"),
                "ssd_student": create_backend("ssd_student", weights=str(weights), device="cpu")}
    pipelines = {name: DepthPipeline(b) for name, b in backends.items()}
    protocol = EvalProtocol(min_depth=0.1, max_depth=80.0)
    scores = {name: {c: [] for c in conditions} for name in backends}
    for seed in tqdm(list(seeds), desc="evaluate", disable=not progress, unit="scene"):
        for condition, (image, depth, camera, T) in evaluation_frames(seed, conditions, width, height, preset).items():
            for name, pipe in pipelines.items():
                pipe.reset()  # every frame is a different scene: no temporal filtering across them
                result = pipe.process(image, camera, T)
                scores[name][condition].append(score_frame(result.depth, depth, protocol))
    return {name: {c: mean_metrics(v) for c, v in per.items()} for name, per in scores.items()}


def metrics_table(results: dict, keys=("abs_rel", "rmse", "delta1", "coverage")) -> str:
    """Markdown table: one row per backend and condition."""
    lines = ["| backend | condition | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for name, per in results.items():
        for condition, m in per.items():
            lines.append(f"| {name} | {condition} | " + " | ".join(f"{m[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)
