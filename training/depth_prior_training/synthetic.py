"""Adapter to the project's ``synth`` package: forward-driving sequences with exact depth and poses.

render_sequence uses ``synth.make_sequence`` when the synth package provides it, and otherwise
composes the same thing from ``generate_scene`` + ``render_view`` (a camera at a seeded height and
pitch driving along the ego lane at constant speed).
"""
from __future__ import annotations

import numpy as np


def camera_for(width: int, height: int, hfov_deg: float = 70.0):
    """A pinhole camera of the given size with the principal point at the centre."""
    from depth_prior_ros.geometry.camera import PinholeCamera

    f = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    return PinholeCamera(K=K, width=width, height=height)


def mount_for(seed: int) -> tuple[float, float]:
    """Seeded camera height (m) and pitch (rad): 1.3..1.8 m, 0..4 degrees down."""
    rng = np.random.default_rng([seed, 7])
    return float(rng.uniform(1.3, 1.8)), float(np.radians(rng.uniform(0.0, 4.0)))


def render_sequence(seed: int, width: int, height: int, count: int, speed: float = 10.0, fps: float = 10.0,
                    preset: str = "tiny"):
    """``count`` consecutive day frames -> (views, K (3, 3), poses: list[T_world_from_camera]).

    With ``synth.frames.make_sequence`` (the project's sequences: nuScenes-like camera ``preset`` with a
    seeded mount height 1.3-1.8 m and synth's pitch/roll draws) each view has image, depth, labels and
    lights; ``width``/``height`` are then ignored (the preset's size). Otherwise the scene is rendered
    here from generate_scene + render_view with a 70 degree camera of the given size.
    """
    try:
        from depth_prior_ros.synth.frames import make_sequence
    except ImportError:
        make_sequence = None
    if make_sequence is not None:
        cam_height, _ = mount_for(seed)
        frames = make_sequence(count, "day", preset=preset, seed=int(seed), speed_mps=speed, fps=fps,
                               camera_height=cam_height, with_lidar=False)
        poses = [f.T_world_from_ground @ f.T_ground_from_camera for f in frames]
        return frames, frames[0].camera.K.copy(), poses
    from depth_prior_ros.geometry.extrinsics import pose_from_static
    from depth_prior_ros.synth.render import render_view
    from depth_prior_ros.synth.scene import generate_scene

    camera = camera_for(width, height)
    cam_height, pitch = mount_for(seed)
    duration = count / fps
    scene = generate_scene(seed, ego_speed=speed, duration=duration)
    T_ground_cam = pose_from_static(cam_height, pitch)
    views, poses = [], []
    for i in range(count):
        t = i / fps
        T_world_ground = np.eye(4)
        T_world_ground[0, 3] = scene.ego_x0 + speed * t
        T_world_ground[1, 3] = scene.ego_y
        T = T_world_ground @ T_ground_cam
        views.append(render_view(scene, camera, T, time=t))
        poses.append(T)
    return views, camera.K.copy(), poses


def ground_pose_for(seed: int) -> np.ndarray:
    """T_ground_from_camera of ``seed``'s camera mount (for prior alignment in evaluation)."""
    from depth_prior_ros.geometry.extrinsics import pose_from_static

    return pose_from_static(*mount_for(seed))


def classical_translator():
    """synth's classical day -> night/rain/fog translator: f(image, condition, depth, labels, seed) -> image.

    ``synth.conditions.translate``; ``fallback_translate`` (below) where the synth package has none.
    """
    try:
        from depth_prior_ros.synth.conditions import translate
    except ImportError:
        import logging

        logging.getLogger(__name__).warning("depth_prior_ros.synth.translate is missing: using the training "
                                            "package's fallback translator")
        return fallback_translate

    def synth_translate(image, condition, depth=None, labels=None, seed=0, lights=None):
        return translate(image, condition, depth, labels, int(seed), lights=lights)

    synth_translate.accepts_lights = True  # type: ignore[attr-defined]
    return synth_translate


def fallback_translate(image: np.ndarray, condition: str, depth: np.ndarray | None = None, labels=None,
                       seed: int = 0) -> np.ndarray:
    """A small classical translator: night (dark, blue, noisy, glare around bright pixels), rain
    (dim, desaturated, blurred, streaks), fog (depth-dependent haze). uint8 (H, W, 3) -> uint8 (H, W, 3)."""
    import cv2

    rng = np.random.default_rng(seed)
    x = image.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    if condition == "night":
        lum = x.mean(axis=2, keepdims=True)
        dark = (x ** 2.2) * rng.uniform(0.12, 0.25) * np.array([0.8, 0.9, 1.2], np.float32)
        glare = cv2.GaussianBlur(np.clip(lum - 0.85, 0, 1) * 4, (0, 0), max(2.0, w / 80))[..., None]
        out = dark + glare * np.array([1.0, 0.9, 0.6], np.float32) + rng.normal(0, 0.02, x.shape).astype(np.float32)
    elif condition == "rain":
        gray = x.mean(axis=2, keepdims=True)
        out = 0.55 * (0.5 * x + 0.5 * gray) + 0.08
        out = cv2.GaussianBlur(out, (0, 0), 0.8)
        streaks = np.zeros((h, w), np.float32)
        n = int(h * w / 150)
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        streaks[ys, xs] = rng.uniform(0.3, 0.8, n)
        length = max(3, h // 12)
        kernel = np.zeros((length, length), np.float32)
        kernel[:, length // 2] = 1.0 / length
        streaks = cv2.filter2D(streaks, -1, kernel) * 3
        out = out + streaks[..., None] * 0.6
    elif condition == "fog":
        d = np.nan_to_num(depth if depth is not None else np.full((h, w), 50.0), nan=1e3)
        t = np.exp(-d / rng.uniform(30, 60))[..., None]
        out = x * t + 0.75 * (1 - t)
    else:
        raise ValueError(f"condition '{condition}' is not one of night, rain, fog")
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
