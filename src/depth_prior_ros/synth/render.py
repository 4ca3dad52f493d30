"""Camera rendering of a synthetic street: exact z-depth, semantics, daylight image, night emission map.

One ray per pixel centre (the rays of ``PinholeCamera.pixel_rays``, z = 1 in the optical frame), so the
depth of every pixel is the exact depth of the surface that pixel's centre sees. The image gets the
usual cheap realism: sun and sky light, ground shadows of every box (exact shadow polygons), contact
darkening under cars, distance haze, filmic tone curve, sRGB encoding and a sub-pixel optical blur.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import PinholeCamera, invert_transform
from . import shading
from .labels import coarse_labels
from .raycast import GROUND, NO_HIT, cast_image, clipped_image_rect, ground_hit
from .scene import BoxTable, Kind, Scene

F32 = np.float32
HAZE_DISTANCE = 1500.0  # m; e-folding distance of daytime aerial perspective
SHADOW_DISTANCE = 150.0  # m; ground shadows of boxes farther than this are a few pixels and skipped
_RAY_CACHE: dict = {}


@dataclass
class RenderedView:
    """What the camera sees. image: uint8 (H, W, 3) sRGB; depth: float32 (H, W) z-depth in metres, NaN
    on sky; semantic: uint8 (H, W) ``Semantic``; labels: uint8 (H, W) ``Label``; emissive: float32
    (H, W, 3) linear radiance of night light sources (lamps, car lights, lit windows), zero elsewhere;
    albedo: float32 (H, W, 3) linear surface colour without any lighting (only when asked for)."""

    image: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    labels: np.ndarray
    emissive: np.ndarray
    albedo: np.ndarray | None = None


def camera_rays(camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """x and y components (H, W) float32 of the z = 1 pixel rays, cached per camera."""
    key = camera.key()
    if key not in _RAY_CACHE:
        if len(_RAY_CACHE) > 8:
            _RAY_CACHE.clear()
        rays = camera.pixel_rays()
        _RAY_CACHE[key] = (np.ascontiguousarray(rays[..., 0], dtype=F32),
                           np.ascontiguousarray(rays[..., 1], dtype=F32))
    return _RAY_CACHE[key]


def world_rays(camera: PinholeCamera, R_world_from_camera: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pixel rays rotated into world axes: dx, dy, dz (H, W) float32 (camera z-component stays 1)."""
    rx, ry = camera_rays(camera)
    R = R_world_from_camera.astype(F32)
    return tuple(R[i, 0] * rx + R[i, 1] * ry + R[i, 2] for i in range(3))


_POOL = None


def _run_chunks(work, n: int, min_chunk: int = 200_000) -> None:
    """Run work(a, b) over [0, n) in contiguous chunks on up to two threads (numpy releases the GIL on
    large arrays, so a 2-core machine renders almost twice as fast). Results do not depend on it."""
    global _POOL
    import os

    workers = min(2, os.cpu_count() or 1, max(1, n // min_chunk))
    if workers == 1:
        work(0, n)
        return
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="synth-render")
    bounds = np.linspace(0, n, workers + 1).astype(int)
    futures = [_POOL.submit(work, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    for future in futures:
        future.result()


def render_view(scene: Scene, camera: PinholeCamera, T_world_from_camera: np.ndarray,
                time: float = 0.0, with_albedo: bool = False) -> RenderedView:
    """Render ``scene`` at ``time`` (s, moves the cars) from a camera posed by T_world_from_camera (4, 4).

    ``with_albedo`` also returns the unlit surface colours (what a night rendering starts from, so no
    daylight shadows survive into it)."""
    T = np.asarray(T_world_from_camera, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError("render_view needs a finite 4x4 T_world_from_camera")
    table = scene.box_table(time)
    origin = T[:3, 3].copy()
    if origin[2] <= 0:
        raise ValueError(f"the camera is {origin[2]:.3f} m above the road; it must be above it")
    dx, dy, dz = world_rays(camera, T[:3, :3])
    T_cam_world = invert_transform(T)
    culling = None if camera.is_distorted else T_cam_world
    t, ids = cast_image(table, origin, dx, dy, dz, culling, camera.K)
    h, w = t.shape
    # Soft shadows do not need every pixel: large images compute them on a 2x coarser grid.
    step = 2 if w >= 1000 else 1
    shadow, occlusion = ground_light(scene, table, origin, ids, dx, dy, dz, culling, camera.K, step)

    fx, fy, fz, ft, fid = dx.reshape(-1), dy.reshape(-1), dz.reshape(-1), t.reshape(-1), ids.reshape(-1)
    # Aerial perspective: distant surfaces fade towards the horizon sky (z-depth is close enough here).
    with np.errstate(invalid="ignore", over="ignore"):
        haze = F32(1.0) - np.exp(ft * F32(-1.0 / HAZE_DISTANCE))
    n = h * w
    radiance = np.zeros((3, n), F32)
    emissive_planar = np.zeros((3, n), F32)
    semantic_flat = np.zeros(n, np.uint8)
    albedo = np.zeros((3, n), F32) if with_albedo else None
    shadow_flat, occlusion_flat = shadow.reshape(-1), occlusion.reshape(-1)
    pixel_angle = 1.0 / max(camera.fx, camera.fy)

    def shade_chunk(a: int, b: int) -> None:
        # Views into the full arrays: each chunk writes only its own pixels.
        sink = shading.RadianceSink(scene, radiance[:, a:b], emissive_planar[:, a:b], semantic_flat[a:b],
                                    shadow_flat[a:b], occlusion_flat[a:b], haze[a:b],
                                    albedo[:, a:b] if albedo is not None else None)
        shading.shade_hits(scene, table, origin, fx[a:b], fy[a:b], fz[a:b], ft[a:b], fid[a:b], pixel_angle,
                           sink=sink)
        sky = np.flatnonzero(fid[a:b] == NO_HIT)
        if sky.size:
            radiance[:, a + sky] = shading.sky_radiance(scene, fx[a + sky], fy[a + sky], fz[a + sky])

    _run_chunks(shade_chunk, n)
    image = to_srgb8(radiance.reshape(3, h, w))
    depth = np.where(np.isfinite(t), t, F32(np.nan)).astype(F32)
    semantic = semantic_flat.reshape(h, w)
    emissive = np.zeros((n, 3), F32)
    lit = np.flatnonzero(emissive_planar.max(axis=0) > 0)
    emissive[lit] = emissive_planar[:, lit].T
    albedo_image = np.ascontiguousarray(albedo.reshape(3, h, w).transpose(1, 2, 0)) if with_albedo else None
    return RenderedView(image, depth, semantic, coarse_labels(semantic), emissive.reshape(h, w, 3), albedo_image)


# --------------------------------------------------------------------------- ground shadows
def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise (x right, y up) convex hull of 2-D points (N, 2) -> (M, 2) float64."""
    import cv2

    hull = cv2.convexHull(np.ascontiguousarray(points, dtype=np.float32)).reshape(-1, 2).astype(np.float64)
    x, y = hull[:, 0], hull[:, 1]
    if np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) < 0:  # twice the signed area
        hull = hull[::-1]
    return hull


def _polygon_distance(px: np.ndarray, py: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Signed distance-like value to a CCW convex polygon: max over edges of the outward offset
    (negative inside, exact distance outside near edges)."""
    sd = None
    for a, b in zip(hull, np.roll(hull, -1, axis=0)):
        ex, ey = b - a
        length = np.hypot(ex, ey)
        if length < 1e-9:
            continue
        nx, ny = ey / length, -ex / length  # outward normal of a CCW polygon
        d = F32(nx) * (px - F32(a[0])) + F32(ny) * (py - F32(a[1]))
        sd = d if sd is None else np.maximum(sd, d)
    return sd


def ground_light(scene: Scene, table: BoxTable, origin: np.ndarray, ids: np.ndarray, dx: np.ndarray,
                 dy: np.ndarray, dz: np.ndarray, T_cam_world: np.ndarray | None, K: np.ndarray,
                 step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sun visibility and ambient occlusion (H, W) float32 in [0, 1] for ground pixels (1 elsewhere).

    A box's shadow on the road is the convex hull of its corners pushed along the sun direction down to
    z = 0, so each shadow is one polygon test over the pixels it can cover. With ``step`` > 1 the test
    runs on every step-th pixel and is upsampled (shadow edges are soft anyway).
    """
    import cv2

    full_h, full_w = ids.shape
    shadow = np.ones((full_h, full_w), F32)
    occlusion = np.ones((full_h, full_w), F32)
    on_ground = ids == GROUND
    if not on_ground.any():
        return shadow, occlusion
    if step > 1:
        dx, dy, dz = dx[::step, ::step], dy[::step, ::step], dz[::step, ::step]
        K = np.diag([1.0 / step, 1.0 / step, 1.0]) @ K
        shadow, occlusion = np.ones(dx.shape, F32), np.ones(dx.shape, F32)
    h, w = dx.shape
    sun = np.array(scene.lighting.sun_direction)
    # Where every ray meets the ground plane (also behind objects, which keeps upsampling smooth).
    t_ground = ground_hit(dz, float(origin[2]))
    with np.errstate(invalid="ignore", over="ignore"):
        gx, gy = t_ground * dx, t_ground * dy
    far = np.hypot(*(table.center[:, :2] - origin[:2]).T) - np.hypot(table.half[:, 0], table.half[:, 1])
    candidates = np.flatnonzero((table.kind != Kind.SIDEWALK) & (far <= SHADOW_DISTANCE))
    all_corners = table.all_corners(candidates)
    for k, corners in zip(candidates, all_corners):
        kind = int(table.kind[k])
        cast = corners - (corners[:, 2:3] / sun[2]) * sun[None, :]  # every corner pushed down the sun ray
        polys = [(_convex_hull(cast[:, :2]), "shadow")]
        if kind == Kind.CAR_BODY:
            polys.append((_convex_hull(corners[:, :2]), "contact"))
        for poly, what in polys:
            margin = 1.2 if what == "contact" else 0.3
            rect = (0, w, 0, h)
            if T_cam_world is not None:
                ring = np.concatenate([poly, np.zeros((len(poly), 1))], axis=1)
                # Expand by the margin so the soft edge is inside the tested rectangle.
                centre = ring.mean(axis=0)
                ring = centre + (ring - centre) * (1 + margin / max(np.linalg.norm(ring - centre, axis=1).min(), 0.1))
                cam = ring @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
                rect = clipped_image_rect(cam, K, w, h)
                if rect is None:
                    continue
            u0, u1, v0, v1 = rect
            win = (slice(v0, v1), slice(u0, u1))
            rel = poly - origin[:2]
            with np.errstate(invalid="ignore"):
                sd = _polygon_distance(gx[win], gy[win], rel)
                if what == "shadow":
                    np.minimum(shadow[win], np.clip(F32(0.5) + sd / F32(0.15), 0.0, 1.0), out=shadow[win])
                else:
                    ao = F32(1.0) - F32(0.55) * np.exp(-np.maximum(sd, F32(0.0)) / F32(0.35))
                    np.minimum(occlusion[win], ao, out=occlusion[win])
    np.nan_to_num(shadow, copy=False, nan=1.0)
    np.nan_to_num(occlusion, copy=False, nan=1.0)
    if step > 1:
        shadow = cv2.resize(shadow, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
        occlusion = cv2.resize(occlusion, (full_w, full_h), interpolation=cv2.INTER_LINEAR)
    shadow[~on_ground] = 1.0
    occlusion[~on_ground] = 1.0
    return shadow, occlusion


# --------------------------------------------------------------------------- tone mapping
_LUT_SCALE = 4096.0  # LUT entries per unit of linear radiance


def _tone_lut(size: int = 65536) -> np.ndarray:
    """uint8 sRGB value for linear radiance idx / _LUT_SCALE after the filmic shoulder 1 - exp(-x)."""
    x = 1.0 - np.exp(-np.arange(size) / _LUT_SCALE)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)


_LUT = _tone_lut()


def to_srgb8(radiance: np.ndarray, blur_sigma: float = 0.55) -> np.ndarray:
    """Planar linear radiance (3, H, W) -> uint8 sRGB (H, W, 3) through a filmic tone curve (one table
    lookup) and a light optical blur."""
    import cv2

    scaled = np.multiply(radiance, F32(_LUT_SCALE))
    np.minimum(scaled, F32(len(_LUT) - 1), out=scaled)  # radiance is never negative
    idx = scaled.astype(np.uint16)
    image = cv2.merge([_LUT[idx[0]], _LUT[idx[1]], _LUT[idx[2]]])
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (3, 3), blur_sigma)
    return image
