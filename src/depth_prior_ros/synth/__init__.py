"""Procedural driving scenes with exact ground truth, and classical adverse-condition translation.

Everything is analytic ray casting in numpy (road plane, boxes), so depth, labels and LiDAR are exact:

    from depth_prior_ros.synth import make_frame, make_sequence, translate, Label
    frame = make_frame("small", "night", seed=3)        # SyntheticFrame
    frames = make_sequence(20, "rain", "small", seed=1, speed_mps=10, fps=10)
    foggy = translate(any_rgb_uint8, "fog", depth=depth_m)

``python -m depth_prior_ros.synth`` prints frame timings (see ``benchmark``).
"""
from .conditions import CONDITIONS, ConditionError, FogConfig, NightConfig, RainConfig, pseudo_depth, translate
from .frames import (PRESETS, CameraPreset, SyntheticFrame, benchmark, iter_sequence, make_frame, make_sequence,
                     preset, render_frame)
from .labels import COARSE_OF_SEMANTIC, Label, Semantic, coarse_labels
from .lidar import LidarConfig, LidarScan, default_T_camera_from_lidar
from .render import RenderedView, render_view
from .scene import Box, Kind, Scene, SceneConfig, generate_scene

__all__ = [
    "CONDITIONS", "ConditionError", "FogConfig", "NightConfig", "RainConfig", "pseudo_depth", "translate",
    "PRESETS", "CameraPreset", "SyntheticFrame", "benchmark", "iter_sequence", "make_frame", "make_sequence",
    "preset", "render_frame", "COARSE_OF_SEMANTIC", "Label", "Semantic", "coarse_labels", "LidarConfig",
    "LidarScan", "default_T_camera_from_lidar", "RenderedView", "render_view", "Box", "Kind", "Scene",
    "SceneConfig", "generate_scene",
]
