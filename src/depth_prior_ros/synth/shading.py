"""Materials of the synthetic street: per-hit albedo, semantic class, normal and night-time emission.

Every function works on flat arrays of M hits; colours and normals are channel-planar (3, M) because
numpy is several times faster on long contiguous rows than on (M, 3) rows of three. Fine patterns
(lane dashes, tile joints, window grids) are box-filtered by the pixel footprint (the size of one pixel
on the surface), so distant texture fades to its average instead of aliasing; that is the renderer's
only anti-aliasing and it costs a few operations per pixel. Colours are linear RGB.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import noise
from .labels import Semantic
from .raycast import GROUND
from .scene import BoxTable, Kind, Scene

F32 = np.float32


def rgb(r: float, g: float, b: float) -> np.ndarray:
    """A colour constant shaped (3, 1) to broadcast against planar (3, M) arrays."""
    return np.array([[r], [g], [b]], dtype=F32)


@dataclass
class Surface:
    """Shading inputs for M hits: albedo (3, M), emissive (3, M) night light sources, gloss (M,) share of
    mirrored sky, normal (3, M) world, semantic (M,) uint8 ``Semantic``, retro (M,) LiDAR retro-reflectance."""

    albedo: np.ndarray
    emissive: np.ndarray
    gloss: np.ndarray
    normal: np.ndarray
    semantic: np.ndarray
    retro: np.ndarray

    @classmethod
    def empty(cls, m: int) -> "Surface":
        return cls(np.zeros((3, m), F32), np.zeros((3, m), F32), np.zeros(m, F32), np.zeros((3, m), F32),
                   np.zeros(m, np.uint8), np.zeros(m, F32))

    def put(self, index: np.ndarray, albedo, emissive, gloss, normal, semantic, retro, on_ground=False) -> None:
        """Write the values of the hits ``index`` (planar arrays, or scalars/None for all-zero)."""
        self.albedo[:, index] = albedo
        if emissive is not None:
            self.emissive[:, index] = emissive
        self.gloss[index] = gloss
        self.normal[:, index] = normal
        self.semantic[index] = semantic
        if retro is not None:
            self.retro[index] = retro


# --------------------------------------------------------------------------- filtered patterns
def wrap(x: np.ndarray, period) -> np.ndarray:
    """x modulo period in [0, period) (np.mod is ~10x slower on floats)."""
    return x - np.floor(x * (F32(1.0) / period)) * period


def band(x: np.ndarray, lo, hi, footprint: np.ndarray) -> np.ndarray:
    """Fraction of a pixel footprint centred at x (same shapes) that lies inside [lo, hi]."""
    half = footprint * F32(0.5)
    overlap = np.minimum(x + half, F32(hi) if np.isscalar(hi) else hi) - \
        np.maximum(x - half, F32(lo) if np.isscalar(lo) else lo)
    return np.clip(overlap / footprint, F32(0.0), F32(1.0))


def periodic_band(x: np.ndarray, lo: float, hi: float, period: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage of the stripes [lo, hi] + k * period (0 <= lo < hi < period); tends to the duty cycle
    when the footprint grows past the period."""
    m = wrap(x, F32(period))
    cov = band(m, lo, hi, footprint) + band(m - F32(period), lo, hi, footprint)
    blend = np.clip(footprint * F32(1.0 / period) - F32(0.5), F32(0.0), F32(1.0))
    return cov + (F32((hi - lo) / period) - cov) * blend


def fade(footprint: np.ndarray, scale: float) -> np.ndarray:
    """Weight of detail of size ``scale`` (m) seen through a pixel footprint: 1 when sharp, 0 when sub-pixel."""
    r = footprint * F32(1.0 / scale)
    return F32(1.0) / (F32(1.0) + r * r)


def mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Planar blend a * (1 - w) + b * w: a (3, M), b (3, M) or (3, 1), w (M,)."""
    return a + (b - a) * w


# --------------------------------------------------------------------------- ground
def ground_albedo(scene: Scene, wx: np.ndarray, wy: np.ndarray, fp_lat: np.ndarray, fp_long: np.ndarray,
                  only_sidewalk: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Road, markings, sidewalk and verge at world points (wx, wy) (M,) on the ground.

    fp_lat / fp_long: pixel footprint across / along the viewing direction (m).
    Returns albedo (3, M), semantic (M,), retro (M,) (painted lines are retro-reflective for LiDAR).
    """
    road = scene.road
    m = len(wx)
    seed = scene.seed
    albedo = np.empty((3, m), F32)
    semantic = np.empty(m, np.uint8)
    retro = np.zeros(m, F32)
    on_road = (wy >= road.right_edge) & (wy <= road.left_edge)
    if only_sidewalk:
        on_road[:] = False
    on_side = ~on_road & (wy >= road.sidewalk_right) & (wy <= road.sidewalk_left)
    on_verge = ~(on_road | on_side)

    idx = np.flatnonzero(on_road)
    if idx.size:
        x, y, fl, fg = wx[idx], wy[idx], fp_lat[idx], fp_long[idx]
        blotch = noise.sample(noise.noise_texture(seed, 3.0), x * F32(0.08), y * F32(0.08))
        grain = noise.sample(noise.noise_texture(seed + 1, 1.0), x * F32(25.0), y * F32(25.0))
        shade = F32(0.085) * (1 + F32(0.12) * blotch + F32(0.12) * grain * fade(fg, 0.08))
        # Darker wheel tracks 0.8 m either side of each lane centre.
        lane_pos = np.abs(wrap(y - F32(road.right_edge), F32(road.lane_width)) - F32(road.lane_width / 2))
        track = (lane_pos - F32(0.8)) * F32(1 / 0.3)
        shade *= 1 - F32(0.13) * np.exp(-track * track) * fade(fl, 0.6)
        paint = np.zeros(idx.size, F32)
        for y0, dashed in road.lines:
            near = np.abs(y - F32(y0)) < road.line_width + fl  # only pixels that can touch the line
            sel = np.flatnonzero(near)
            if not sel.size:
                continue
            cov = band(y[sel], y0 - road.line_width / 2, y0 + road.line_width / 2, fl[sel])
            if dashed:
                cov *= periodic_band(x[sel], 0.0, road.dash_length, road.dash_period, fg[sel])
            paint[sel] = np.maximum(paint[sel], cov)
        paint *= np.clip(F32(0.85) + F32(0.2) * grain, F32(0.0), F32(1.0))  # worn paint
        albedo[:, idx] = mix(shade * rgb(1.0, 1.0, 1.04), rgb(0.62, 0.62, 0.60), paint)
        semantic[idx] = np.where(paint > 0.5, Semantic.LANE_MARKING, Semantic.ROAD)
        retro[idx] = paint * F32(0.6)

    idx = np.flatnonzero(on_side)
    if idx.size:
        x, y, fl, fg = wx[idx], wy[idx], fp_lat[idx], fp_long[idx]
        dist_edge = np.where(y > 0, y - F32(road.left_edge), F32(road.right_edge) - y)
        kerb = dist_edge < 0.25
        stain = noise.sample(noise.noise_texture(seed + 2, 2.5), x * F32(0.3), y * F32(0.3))
        joints = np.maximum(periodic_band(x, 0.0, 0.03, 0.5, fg), periodic_band(y, 0.0, 0.03, 0.5, fl))
        shade = F32(0.27) * (1 + F32(0.1) * stain) * (1 - F32(0.35) * joints)
        shade = np.where(kerb, F32(0.36) * (1 + F32(0.05) * stain), shade)
        albedo[:, idx] = shade * rgb(1.0, 0.98, 0.95)
        semantic[idx] = np.where(kerb, Semantic.KERB, Semantic.SIDEWALK)

    idx = np.flatnonzero(on_verge)
    if idx.size:
        x, y = wx[idx], wy[idx]
        n1 = noise.sample(noise.noise_texture(seed + 3, 2.0), x * F32(0.5), y * F32(0.5))
        n2 = noise.sample(noise.noise_texture(seed + 4, 1.0), x * F32(6.0), y * F32(6.0)) * fade(fp_long[idx], 0.3)
        dirt = np.clip(F32(0.4) + F32(0.3) * n1, F32(0.0), F32(1.0))
        albedo[:, idx] = mix(rgb(0.06, 0.10, 0.035), rgb(0.14, 0.11, 0.08), dirt) * (1 + F32(0.2) * n2)
        semantic[idx] = Semantic.VERGE
    return albedo, semantic, retro


# --------------------------------------------------------------------------- boxes
# Shaders take the hit in the box frame: local (3, M) from the box centre, face (M,) in 0..5 for
# +x, -x, +y, -y, +z, -z, half (3, M), albedo (3, M), variant (M,), footprint fp (M,); they return
# albedo (3, M), emissive (3, M) or None, gloss (M,) or scalar, retro (M,) or None.
def _rect(u, v, u0, u1, v0, v1, fp) -> np.ndarray:
    return band(u, u0, u1, fp) * band(v, v0, v1, fp)


def car_body(local, face, half, albedo, variant, fp) -> tuple:
    """Paint, wheels, lights, grille, plate on a car body."""
    x, y, z = local
    hx, hy, hz = half
    zb = z + hz  # height above the road
    top_z = 2 * hz
    side = (face == 2) | (face == 3)
    front, rear = face == 0, face == 1
    vertical = face < 4
    ay = np.abs(y)
    col = mix(albedo, rgb(0.015, 0.015, 0.015), band(zb, -1.0, 0.2, fp) * vertical)  # underbody
    for sgn in (-1.0, 1.0):  # tyres and rims
        dxw, dzw = x - F32(sgn) * (hx - F32(0.78)), zb - F32(0.33)
        r = np.sqrt(dxw * dxw + dzw * dzw)
        col = mix(col, rgb(0.012, 0.012, 0.012), band(r, -1.0, 0.33, fp) * side)
        col = mix(col, rgb(0.22, 0.22, 0.23), band(r, -1.0, 0.19, fp) * side)
    seam = band(x, -0.01, 0.01, fp) * band(zb, 0.35, top_z - 0.05, fp) * side
    col = mix(col, rgb(0.01, 0.01, 0.01), seam * F32(0.8))
    head = _rect(ay, zb, hy - 0.45, hy - 0.08, top_z - 0.32, top_z - 0.12, fp) * front
    col = mix(col, rgb(0.85, 0.85, 0.80), head)
    col = mix(col, rgb(0.02, 0.02, 0.02), _rect(ay, zb, 0.0, 0.42, 0.45, 0.72, fp) * front)  # grille
    plate = _rect(ay, zb, 0.0, 0.26, 0.28, 0.40, fp) * (front | rear)
    col = mix(col, rgb(0.75, 0.75, 0.72), plate)
    tail = _rect(ay, zb, hy - 0.38, hy - 0.06, top_z - 0.30, top_z - 0.12, fp) * rear
    col = mix(col, rgb(0.45, 0.02, 0.02), tail)
    col = mix(col, rgb(0.04, 0.04, 0.045), band(zb, 0.15, 0.32, fp) * (front | rear) * F32(0.8))  # bumper
    emis = head * rgb(1.6, 1.5, 1.2) + tail * rgb(1.2, 0.05, 0.03)
    return col, emis, F32(0.06), plate * F32(0.5) + tail * F32(0.4)


def car_cabin(local, face, half, albedo, variant, fp) -> tuple:
    """Roof in paint, glass all round with pillars."""
    x, y, z = local
    hx, hy, hz = half
    zc = z + hz
    side = (face == 2) | (face == 3)
    ends = (face == 0) | (face == 1)
    glass = band(zc, 0.07, 2 * hz - 0.07, fp) * band(x, -hx + 0.12, hx - 0.12, fp) * \
        (1 - band(np.abs(x), 0.0, 0.06, fp)) * side + \
        band(zc, 0.05, 2 * hz - 0.05, fp) * band(np.abs(y), 0.0, hy - 0.1, fp) * ends
    return mix(albedo, rgb(0.02, 0.025, 0.03), glass), None, F32(0.06) + F32(0.12) * glass, None


def building(local, face, half, albedo, variant, fp) -> tuple:
    """Facade: wall with dirt noise, window grid, shop windows on the ground floor, cornice, roof."""
    x, y, z = local
    zb = z + half[2]
    s = np.where(face < 2, y, x)  # horizontal coordinate along the face
    vertical = face < 4
    wall_noise = noise.sample(noise.noise_texture(7, 2.5), s * F32(0.4) + variant * F32(37.0), zb * F32(0.4))
    period = F32(2.6) + (variant % 4).astype(F32) * F32(0.35)
    su = s + (variant % 7).astype(F32) * F32(0.4)
    win = band(wrap(su, period), (period - 1.2) / 2, (period + 1.2) / 2, fp) * \
        band(wrap(zb - F32(4.2), F32(3.2)), 0.8, 2.5, fp) * (zb > 4.2)
    shop = band(wrap(su, F32(6.0)), 0.4, 5.4, fp) * band(zb, 0.5, 3.4, fp)
    roof_line = band(zb, 2 * half[2] - 0.5, 2 * half[2] + 1.0, fp) * vertical
    glass = (win + shop) * (1 - roof_line) * vertical
    # One scalar brightness per pixel, then a single blend towards the glass colour.
    wall = (1 + F32(0.08) * wall_noise) * (1 - F32(0.4) * roof_line)
    col = albedo * (wall * (1 - glass)) + glass * rgb(0.03, 0.04, 0.05)
    roof = np.flatnonzero(face == 4)
    if roof.size:
        col[:, roof] = F32(0.12)
    # At night about a third of the windows are lit, chosen per window so every frame agrees.
    lit = shop * F32(0.9) * vertical
    w = np.flatnonzero(win > 0)
    if w.size:
        cell = noise.cell_hash(np.floor(su[w] / period[w]), np.floor((zb[w] - 4.2) / 3.2) + variant[w] * 131, 17)
        lit[w] += (cell < 0.35) * win[w] * vertical[w]
    return col, lit * rgb(0.40, 0.30, 0.16), F32(0.25) * glass, None


def metal(local, face, half, albedo, variant, fp) -> tuple:
    """Poles: plain painted metal."""
    return albedo, None, F32(0.1), None


def lamp_arm(local, face, half, albedo, variant, fp) -> tuple:
    """Lamp arm: metal with the lamp glass under the end over the road (variant parity: even = +y end)."""
    towards = np.where(variant % 2 == 0, F32(1.0), F32(-1.0))
    lamp = band(local[1] * towards, half[1] - 0.6, half[1], fp) * (face == 5)
    return mix(albedo, rgb(0.7, 0.7, 0.65), lamp), lamp * rgb(4.0, 3.3, 2.3), F32(0.1), None


def kerb(local, face, half, albedo, variant, fp) -> tuple:
    """Faces of raised sidewalks (their tops are replaced by the ground texture)."""
    return np.broadcast_to(rgb(0.36, 0.35, 0.33), albedo.shape), None, F32(0.0), None


BOX_SHADERS = {Kind.CAR_BODY: (car_body, Semantic.CAR), Kind.CAR_CABIN: (car_cabin, Semantic.CAR),
               Kind.BUILDING: (building, Semantic.BUILDING), Kind.POLE: (metal, Semantic.POLE),
               Kind.LAMP_ARM: (lamp_arm, Semantic.POLE), Kind.SIDEWALK: (kerb, Semantic.KERB)}


# --------------------------------------------------------------------------- dispatch
def _box_faces(local: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face index (M,) in 0..5 (+x, -x, +y, -y, +z, -z) and local unit normal (3, M) of hits on boxes."""
    ax, ay, az = np.abs(local[0]) / half[0], np.abs(local[1]) / half[1], np.abs(local[2]) / half[2]
    on_x = (ax >= ay) & (ax >= az)
    on_y = ~on_x & (ay >= az)
    on_z = ~(on_x | on_y)
    sign = np.sign(local).astype(F32)
    normal = np.stack([sign[0] * on_x, sign[1] * on_y, sign[2] * on_z])
    face = np.where(on_x, 0, np.where(on_y, 2, 4)) + (normal.sum(axis=0) < 0)
    return face, normal


def shade_hits(scene: Scene, table: BoxTable, origin: np.ndarray, dx: np.ndarray, dy: np.ndarray,
               dz: np.ndarray, t: np.ndarray, ids: np.ndarray, pixel_angle: float, sink=None):
    """Surfaces for N rays (flat float32 arrays) from ``origin`` (world (3,)) with nearest hits (t, ids).

    pixel_angle: angular size of one sample (rad), which sets the texture filtering footprint.
    Each group of hits (ground, then one box kind at a time) is handed to
    ``sink.put(index, albedo, emissive, gloss, normal, semantic, retro, on_ground)`` (planar arrays, or
    constants that broadcast; None for all-zero emissive / retro). Without a sink a ``Surface`` of all N rays is
    filled and returned (rays without a hit stay zero with semantic SKY).
    """
    out = sink if sink is not None else Surface.empty(len(t))
    g = np.flatnonzero(ids == GROUND)
    if g.size:
        tg, gx, gy, gz = t[g], dx[g], dy[g], dz[g]
        norm = np.sqrt(gx * gx + gy * gy + gz * gz)
        fp_lat = tg * norm * F32(pixel_angle) + F32(1e-4)
        cos_inc = np.maximum(np.abs(gz) / norm, F32(0.01))
        albedo, semantic, retro = ground_albedo(scene, F32(origin[0]) + tg * gx, F32(origin[1]) + tg * gy,
                                                fp_lat, fp_lat / cos_inc)
        out.put(g, albedo, None, F32(0.0), rgb(0.0, 0.0, 1.0), semantic, retro, on_ground=True)

    b = np.flatnonzero(ids >= 0)
    if not b.size:
        return out
    kinds = table.kind[ids[b]]
    centre_rel = (table.center - origin).astype(F32).T          # (3, K)
    half_all = table.half.astype(F32).T                          # (3, K)
    cos_all, sin_all = np.cos(table.yaw).astype(F32), np.sin(table.yaw).astype(F32)
    albedo_all = table.albedo.T                                  # (3, K)
    for kind in np.unique(kinds):
        sel = b[kinds == kind]
        k = ids[sel]
        ts, sx, sy, sz = t[sel], dx[sel], dy[sel], dz[sel]
        px, py, pz = ts * sx - centre_rel[0, k], ts * sy - centre_rel[1, k], ts * sz - centre_rel[2, k]
        rotated = bool(np.any(table.yaw[k] != 0))
        if rotated:
            c, s = cos_all[k], sin_all[k]
            local = np.stack([c * px + s * py, -s * px + c * py, pz])
        else:
            local = np.stack([px, py, pz])
        half = half_all[:, k]
        face, normal = _box_faces(local, half)
        if rotated:
            normal = np.stack([c * normal[0] - s * normal[1], s * normal[0] + c * normal[1], normal[2]])
        norm = np.sqrt(sx * sx + sy * sy + sz * sz)
        cos_inc = np.maximum(np.abs(normal[0] * sx + normal[1] * sy + normal[2] * sz) / norm, F32(0.05))
        fp = ts * norm * F32(pixel_angle) / cos_inc + F32(1e-4)
        kind = Kind(int(kind))
        shader, semantic = BOX_SHADERS[kind]
        col, emis, gloss, retro = shader(local, face, half, albedo_all[:, k], table.variant[k], fp)
        sem = np.full(len(sel), semantic, np.uint8)
        if kind == Kind.SIDEWALK and np.any(face == 4):
            # Raised sidewalk tops share the ground texture (tiles, kerb band) in world coordinates.
            top = np.flatnonzero(face == 4)
            col = np.array(col)
            wx = F32(origin[0]) + ts[top] * sx[top]
            wy = F32(origin[1]) + ts[top] * sy[top]
            col[:, top], sem[top], _ = ground_albedo(scene, wx, wy, fp[top], fp[top], only_sidewalk=True)
        out.put(sel, col, emis, gloss, normal, sem, retro)
    return out


def sky_radiance(scene: Scene, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """Sky colour (3, M) for ray directions (M,): horizon-to-zenith gradient, sun glow, clouds."""
    light = scene.lighting
    inv_norm = F32(1.0) / np.sqrt(dx * dx + dy * dy + dz * dz)
    up = dz * inv_norm
    elev = np.clip(up, F32(0.0), F32(1.0))
    col = mix(rgb(*light.sky_horizon), rgb(*light.sky_zenith), np.sqrt(elev))
    sun = light.sun_direction
    cos_sun = np.clip((dx * F32(sun[0]) + dy * F32(sun[1]) + dz * F32(sun[2])) * inv_norm, F32(0.0), F32(1.0))
    glow = cos_sun ** 16
    col = col + (F32(0.25) * glow * glow + F32(4.0) * (cos_sun > 0.9995)) * rgb(*light.sun_color)
    # Clouds on a plane 1.5 km up, thinning towards the horizon where they would alias.
    reach = F32(15.0) / np.maximum(up, F32(0.02)) * inv_norm
    density = noise.sample(noise.noise_texture(scene.seed + 11, 3.2), dx * reach, dy * reach)
    cover = np.clip((density - F32(0.3)) * F32(0.9), F32(0.0), F32(0.85)) * np.clip(elev * F32(8.0), 0.0, 1.0)
    return mix(col, rgb(0.85, 0.86, 0.9), cover)


class RadianceSink:
    """Turns shaded hits straight into daylight radiance for an image, without keeping albedo and normals
    of every pixel. Writes into the given arrays (views are fine): radiance (3, N), emissive (3, N),
    semantic (N,) and optionally albedo (3, N); reads per-pixel shadow, occlusion (ground only) and
    haze weights (N,).

    radiance = albedo * (ambient * occlusion + sun * cos * shadow) + gloss * sky, then faded towards
    the horizon colour by the haze weight.
    """

    def __init__(self, scene: Scene, radiance: np.ndarray, emissive: np.ndarray, semantic: np.ndarray,
                 shadow: np.ndarray, occlusion: np.ndarray, haze: np.ndarray, albedo: np.ndarray | None = None):
        light = scene.lighting
        self.sun = [F32(v) for v in light.sun_direction]
        self.ambient, self.sun_color = rgb(*light.ambient), rgb(*light.sun_color)
        self.sky, self.horizon = rgb(*light.sky_horizon), rgb(*light.sky_horizon) * F32(1.1)
        self.radiance, self.emissive, self.semantic = radiance, emissive, semantic
        self.shadow, self.occlusion, self.haze = shadow, occlusion, haze
        self.albedo = albedo  # optional (3, N) output of the surface colours themselves

    def put(self, index, albedo, emissive, gloss, normal, semantic, retro, on_ground: bool = False) -> None:
        sx, sy, sz = self.sun
        cos_sun = np.clip(normal[0] * sx + normal[1] * sy + normal[2] * sz, F32(0.0), F32(1.0))
        ambient = F32(0.65) + F32(0.35) * normal[2]
        if on_ground:  # shadows and contact occlusion are only computed on the ground
            ambient = ambient * self.occlusion[index]
            cos_sun = cos_sun * self.shadow[index]
        rad = albedo * (ambient * self.ambient + cos_sun * self.sun_color)
        if np.ndim(gloss) or gloss != 0:
            rad += gloss * self.sky
        self.radiance[:, index] = rad + (self.horizon - rad) * self.haze[index]
        self.semantic[index] = semantic
        if emissive is not None:
            self.emissive[:, index] = emissive
        if self.albedo is not None:
            self.albedo[:, index] = albedo
