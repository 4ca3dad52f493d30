"""Synthetic frames and sequences with exact ground truth: what tests, bags, replay and the demo consume.

Frames of reference (all 4x4 homogeneous, float64):
- world: the street (x along the road, y left, z up, road surface z = 0);
- ground: z = 0 on the road, origin directly below the camera, x along the road (``T_world_from_ground``
  is the ego odometry: a translation along x plus the lane's y);
- camera: optical frame, ``T_ground_from_camera = pose_from_static(height, pitch, roll, yaw)``;
- lidar: x forward, y left, z up, rigidly mounted: ``T_camera_from_lidar``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..geometry import PinholeCamera, pose_from_static
from . import lidar as lidar_mod
from .conditions import CONDITIONS, translate
from .render import render_view
from .scene import Scene, SceneConfig, generate_scene


@dataclass(frozen=True)
class CameraPreset:
    """A camera (intrinsics, size) and its usual mounting height (m) and pitch (deg, > 0 looks down)."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount_height: float
    pitch_deg: float = 0.5

    def camera(self) -> PinholeCamera:
        K = np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
        return PinholeCamera(K, self.width, self.height, np.zeros(5), "plumb_bob")


def _scaled(name: str, base: CameraPreset, width: int, height: int) -> CameraPreset:
    cam = base.camera().resized(width, height)
    return CameraPreset(name, width, height, cam.fx, cam.fy, cam.cx, cam.cy, base.mount_height, base.pitch_deg)


_NUSCENES = CameraPreset("nuscenes", 1600, 900, 1266.0, 1266.0, 816.0, 491.0, 1.5, 0.5)
PRESETS: dict[str, CameraPreset] = {
    "nuscenes": _NUSCENES,  # CAM_FRONT-like
    "kitti": CameraPreset("kitti", 1242, 375, 721.5, 721.5, 609.6, 172.9, 1.65, 0.0),
    "small": _scaled("small", _NUSCENES, 640, 360),   # same view as nuscenes, for tests and demos
    "tiny": _scaled("tiny", _NUSCENES, 320, 180),
}


def preset(name: str) -> CameraPreset:
    """The named ``CameraPreset``; ValueError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown camera preset '{name}' (choose from {', '.join(PRESETS)})") from None


@dataclass
class SyntheticFrame:
    """One rendered frame with exact ground truth.

    image: uint8 (H, W, 3) RGB after the adverse ``condition``; day_image: the same view in clear day
    (identical array for "day"); depth: float32 (H, W) z-depth in metres along the optical axis, NaN on
    sky (``np.isfinite(depth)`` is the valid mask); labels: uint8 (H, W) ``Label`` (SKY=0, ROAD=1,
    OTHER_GROUND=2, VERTICAL=3); semantic: uint8 (H, W) ``Semantic``; lights: float16 (H, W, 3) linear
    radiance of night light sources (what ``translate(..., lights=)`` glows; float16 keeps long
    sequences small); lidar: float32 (N, 3) in the LiDAR frame,
    lidar_intensity float32 (N,) in [0, 1], lidar_ring uint16 (N,), lidar_visible bool (N,);
    index: frame number; stamp: seconds since the sequence start (index / fps).
    """

    image: np.ndarray
    day_image: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    semantic: np.ndarray
    lights: np.ndarray
    camera: PinholeCamera
    T_ground_from_camera: np.ndarray
    T_world_from_ground: np.ndarray
    T_camera_from_lidar: np.ndarray
    lidar: np.ndarray
    lidar_intensity: np.ndarray
    lidar_ring: np.ndarray
    lidar_visible: np.ndarray
    condition: str
    index: int = 0
    stamp: float = 0.0
    seed: int = 0
    timings_ms: dict = field(default_factory=dict)

    @property
    def T_world_from_camera(self) -> np.ndarray:
        return self.T_world_from_ground @ self.T_ground_from_camera

    @property
    def T_ground_from_lidar(self) -> np.ndarray:
        return self.T_ground_from_camera @ self.T_camera_from_lidar

    @property
    def valid(self) -> np.ndarray:
        """(H, W) bool: pixels with a depth (everything but sky)."""
        return np.isfinite(self.depth)


def _check_condition(condition: str) -> None:
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition '{condition}' (choose from {', '.join(CONDITIONS)})")


def render_frame(scene: Scene, camera: PinholeCamera, T_ground_from_camera: np.ndarray,
                 T_world_from_ground: np.ndarray, *, time_s: float = 0.0, condition: str = "day",
                 lidar: lidar_mod.LidarConfig | None = None, index: int = 0, seed: int = 0,
                 condition_config=None) -> SyntheticFrame:
    """Render one frame of ``scene`` (cars placed at ``time_s``) with LiDAR and the adverse condition.

    ``lidar=None`` skips the LiDAR (empty arrays); the default rig is used by ``make_frame`` and
    ``make_sequence``.
    """
    _check_condition(condition)
    timings = {}
    T_world_from_camera = np.asarray(T_world_from_ground, float) @ np.asarray(T_ground_from_camera, float)
    start = time.perf_counter()
    view = render_view(scene, camera, T_world_from_camera, time_s, with_albedo=condition == "night")
    timings["render"] = (time.perf_counter() - start) * 1e3

    start = time.perf_counter()
    if lidar is not None:
        table = scene.box_table(time_s)
        T_world_from_lidar = T_world_from_camera @ lidar.T_camera_from_lidar
        limits = lidar_mod.camera_azimuth_limits(camera, lidar.T_camera_from_lidar)
        scan, world = lidar_mod.scan(scene, table, T_world_from_lidar, lidar, limits, seed=seed * 7919 + index)
        lidar_mod.mark_visible(scan, world, table, camera, T_world_from_camera)
        if lidar.drop_occluded:
            keep = scan.visible
            scan = lidar_mod.LidarScan(scan.points[keep], scan.intensity[keep], scan.ring[keep], scan.visible[keep])
        T_cam_lidar = lidar.T_camera_from_lidar.copy()
    else:
        scan = lidar_mod.LidarScan(np.zeros((0, 3), np.float32), np.zeros(0, np.float32),
                                   np.zeros(0, np.uint16), np.zeros(0, bool))
        T_cam_lidar = lidar_mod.default_T_camera_from_lidar()
    timings["lidar"] = (time.perf_counter() - start) * 1e3

    start = time.perf_counter()
    image = view.image if condition == "day" else translate(
        view.image, condition, depth=view.depth, labels=view.labels, seed=seed * 7919 + index,
        lights=view.emissive, albedo=view.albedo, config=condition_config)
    timings["condition"] = (time.perf_counter() - start) * 1e3
    return SyntheticFrame(image=image, day_image=view.image, depth=view.depth, labels=view.labels,
                          semantic=view.semantic, lights=view.emissive.astype(np.float16), camera=camera,
                          T_ground_from_camera=np.asarray(T_ground_from_camera, float).copy(),
                          T_world_from_ground=np.asarray(T_world_from_ground, float).copy(),
                          T_camera_from_lidar=T_cam_lidar, lidar=scan.points, lidar_intensity=scan.intensity,
                          lidar_ring=scan.ring, lidar_visible=scan.visible, condition=condition, index=index,
                          stamp=float(time_s), seed=seed, timings_ms=timings)


def _resolve_camera(preset_name: str, camera: PinholeCamera | None, camera_height: float | None,
                    pitch: float | None, roll: float | None, rng: np.random.Generator) -> tuple:
    spec = preset(preset_name)
    cam = camera if camera is not None else spec.camera()
    height = float(camera_height) if camera_height is not None else spec.mount_height
    # Random mounting angles are drawn even when given, so the layout does not depend on them.
    pitch_r = np.radians(spec.pitch_deg + rng.uniform(-1.0, 1.5))
    roll_r = np.radians(rng.uniform(-1.0, 1.0))
    pitch_r = pitch_r if pitch is None else float(pitch)
    roll_r = roll_r if roll is None else float(roll)
    if height <= 0:
        raise ValueError(f"camera_height must be above the road, got {height} m")
    return cam, height, pitch_r, roll_r


def make_frame(preset: str = "small", condition: str = "day", seed: int = 0, *,
               camera: PinholeCamera | None = None, camera_height: float | None = None,
               pitch: float | None = None, roll: float | None = None, yaw: float = 0.0,
               scene_config: SceneConfig | None = None, lidar: lidar_mod.LidarConfig | None = None,
               with_lidar: bool = True, condition_config=None) -> SyntheticFrame:
    """One random street frame from ``seed``. Angles in radians (pitch > 0 looks down); None draws
    small random ones (pitch = preset pitch + U(-1, 1.5) deg, roll = U(-1, 1) deg)."""
    _check_condition(condition)
    rng = np.random.default_rng([seed, 1])
    cam, height, pitch_r, roll_r = _resolve_camera(preset, camera, camera_height, pitch, roll, rng)
    scene = generate_scene(seed, scene_config)
    T_world_from_ground = np.eye(4)
    T_world_from_ground[:2, 3] = (scene.ego_x0, scene.ego_y)
    T_ground_from_camera = pose_from_static(height, pitch_r, roll_r, yaw)
    config = (lidar or lidar_mod.LidarConfig()) if with_lidar else None
    return render_frame(scene, cam, T_ground_from_camera, T_world_from_ground, condition=condition,
                        lidar=config, seed=seed, condition_config=condition_config)


def iter_sequence(n_frames: int, condition: str = "day", preset: str = "small", seed: int = 0,
                  speed_mps: float = 10.0, fps: float = 10.0, *, camera: PinholeCamera | None = None,
                  camera_height: float | None = None, pitch: float | None = None, roll: float | None = None,
                  pose_jitter_deg: float = 0.15, scene_config: SceneConfig | None = None,
                  lidar: lidar_mod.LidarConfig | None = None, with_lidar: bool = True,
                  condition_config=None) -> Iterator[SyntheticFrame]:
    """Frames of the ego driving along its lane at ``speed_mps``, sampled at ``fps``.

    Other cars drive too (each lane at its own speed; the ego's lane never slower than the ego), so
    consecutive frames are related by the ego motion ``T_world_from_ground`` plus object motion. The
    camera pitch and roll wobble by up to ``pose_jitter_deg`` (suspension), and each frame carries its
    own exact ``T_ground_from_camera``.
    """
    _check_condition(condition)
    if n_frames < 1 or fps <= 0 or speed_mps < 0:
        raise ValueError("make_sequence needs n_frames >= 1, fps > 0 and speed_mps >= 0")
    rng = np.random.default_rng([seed, 1])
    cam, height, pitch_r, roll_r = _resolve_camera(preset, camera, camera_height, pitch, roll, rng)
    duration = (n_frames - 1) / fps
    scene = generate_scene(seed, scene_config, ego_speed=speed_mps, duration=duration)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    config = (lidar or lidar_mod.LidarConfig()) if with_lidar else None
    jitter = np.radians(pose_jitter_deg)
    for i in range(n_frames):
        t = i / fps
        T_world_from_ground = np.eye(4)
        T_world_from_ground[:2, 3] = (scene.ego_x0 + speed_mps * t, scene.ego_y)
        # Slow body pitch/roll oscillation (about 1.3 Hz and 0.8 Hz), like a car on its springs.
        pitch_i = pitch_r + jitter * np.sin(2 * np.pi * 1.3 * t + phase[0])
        roll_i = roll_r + jitter * 0.6 * np.sin(2 * np.pi * 0.8 * t + phase[1])
        T_ground_from_camera = pose_from_static(height, pitch_i, roll_i, 0.0)
        yield render_frame(scene, cam, T_ground_from_camera, T_world_from_ground, time_s=t, condition=condition,
                           lidar=config, index=i, seed=seed, condition_config=condition_config)


def make_sequence(n_frames: int, condition: str = "day", preset: str = "small", seed: int = 0,
                  speed_mps: float = 10.0, fps: float = 10.0, **options) -> list[SyntheticFrame]:
    """``iter_sequence`` collected into a list (same arguments)."""
    return list(iter_sequence(n_frames, condition, preset, seed, speed_mps, fps, **options))


def benchmark(preset: str = "nuscenes", repeats: int = 3, seed: int = 0, condition: str = "day") -> dict:
    """Time frame generation: best of ``repeats`` (after one warm-up) per stage, in ms of wall time,
    plus ``cpu_total`` (process CPU time of the whole frame, all threads) for busy machines.

    Keys: render, lidar, condition, total, cpu_total, width, height, lidar_points.
    """
    make_frame(preset, condition, seed)  # warm caches (pixel rays, noise textures)
    best: dict = {}
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        frame = make_frame(preset, condition, seed)
        stages = {**frame.timings_ms, "total": (time.perf_counter() - start) * 1e3,
                  "cpu_total": (time.process_time() - cpu) * 1e3}
        for key, value in stages.items():
            best[key] = min(best.get(key, float("inf")), value)
    spec = PRESETS[preset]
    return {**{k: round(v, 1) for k, v in best.items()}, "width": spec.width, "height": spec.height,
            "lidar_points": int(len(frame.lidar))}
