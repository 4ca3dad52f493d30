"""Procedural street scenes: a straight road along world +x with lanes, sidewalks, cars, buildings, lamps.

World frame: x along the road (the ego drives towards +x), y left, z up; the road surface is the plane
z = 0 exactly. Lanes driving with the ego lie at y < 0, oncoming lanes at y > 0, the centre line at
y = 0. Everything that stands on the road is a box (optionally yawed about z) with its bottom at z = 0,
so the scene is a union of planes whose exact ray intersections give exact depth.

Objects move only along x (``Box.velocity``), which keeps cars in their lanes for any time span.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np


class Kind(IntEnum):
    """What a box is; selects its texture and semantic class."""

    CAR_BODY = 0
    CAR_CABIN = 1
    BUILDING = 2
    POLE = 3
    LAMP_ARM = 4
    SIDEWALK = 5


@dataclass(frozen=True)
class Box:
    """A box standing on (or lying along) the ground.

    center: (3,) world position of the box centre at time 0 (m); half: (3,) half extents along the
    box's own x (forward), y, z axes (m); yaw: rotation about world z (rad); albedo: (3,) linear RGB;
    velocity: speed along world x (m/s); variant: integer that varies textures between boxes.
    """

    kind: Kind
    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0
    albedo: tuple[float, float, float] = (0.5, 0.5, 0.5)
    velocity: float = 0.0
    variant: int = 0


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the random layout. ``None`` means "draw from the seed".

    car_density: cars per 100 m of lane (the coverage knob; 0 gives an empty road).
    curb_height: sidewalk height above the road (m); 0 keeps all ground at z = 0.
    """

    lanes_forward: int | None = None       # lanes in the ego's direction (1..3)
    lanes_backward: int | None = None      # oncoming lanes (0..2)
    lane_width: float = 3.5
    sidewalk_width: float | None = None    # per side, 2.5..4.5 m when drawn
    curb_height: float = 0.0
    car_density: float = 4.0
    max_cars: int = 60
    buildings: bool = True
    lamp_spacing: float = 30.0             # m between street lamps on each side; 0 for none
    length_ahead: float = 260.0            # scene extent in front of the ego start (m)
    length_behind: float = 40.0

    def __post_init__(self) -> None:
        for name in ("lanes_forward", "lanes_backward"):
            value = getattr(self, name)
            if value is not None and not (0 <= value <= 4):
                raise ValueError(f"SceneConfig.{name} must be between 0 and 4 lanes, got {value}")
        if self.lanes_forward == 0:
            raise ValueError("SceneConfig.lanes_forward must be at least 1 (the ego drives in one)")
        if self.lane_width <= 2.0 or self.car_density < 0 or self.curb_height < 0 or self.curb_height > 0.5:
            raise ValueError("SceneConfig needs lane_width > 2 m, car_density >= 0 and 0 <= curb_height <= 0.5 m")


@dataclass(frozen=True)
class Road:
    """Cross-section of the road. All y in world metres; lines are (y, dashed) pairs."""

    right_edge: float          # y of the road's right border (< 0)
    left_edge: float           # y of the road's left border (>= 0)
    sidewalk_right: float      # outer y of the right sidewalk (building line)
    sidewalk_left: float
    curb_height: float
    lane_width: float
    lane_centres: tuple[float, ...]
    lines: tuple[tuple[float, bool], ...]
    line_width: float = 0.15
    dash_length: float = 3.0
    dash_period: float = 9.0


@dataclass(frozen=True)
class Lighting:
    """Sun and sky, linear RGB. sun_direction points from the ground towards the sun (unit, z > 0)."""

    sun_direction: tuple[float, float, float]
    sun_color: tuple[float, float, float]
    ambient: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """A full layout: road cross-section, boxes, light, and where the ego starts (world y of its lane)."""

    seed: int
    road: Road
    boxes: tuple[Box, ...]
    lighting: Lighting
    ego_y: float
    ego_x0: float = 0.0
    extent: tuple[float, float] = (-40.0, 260.0)
    notes: dict = field(default_factory=dict)

    def box_table(self, time: float = 0.0) -> "BoxTable":
        return BoxTable.from_boxes(self.boxes, time)


@dataclass(frozen=True)
class BoxTable:
    """The boxes at one instant as arrays (K boxes): what the ray caster and shaders index by box id."""

    center: np.ndarray   # (K, 3) float64 world
    half: np.ndarray     # (K, 3) float64
    yaw: np.ndarray      # (K,) float64
    kind: np.ndarray     # (K,) int16 Kind
    albedo: np.ndarray   # (K, 3) float32
    variant: np.ndarray  # (K,) int64

    @classmethod
    def from_boxes(cls, boxes, time: float = 0.0) -> "BoxTable":
        n = len(boxes)
        center = np.array([b.center for b in boxes], dtype=np.float64).reshape(n, 3)
        center[:, 0] += np.array([b.velocity for b in boxes], dtype=np.float64) * float(time)
        return cls(center,
                   np.array([b.half for b in boxes], dtype=np.float64).reshape(n, 3),
                   np.array([b.yaw for b in boxes], dtype=np.float64).reshape(n),
                   np.array([int(b.kind) for b in boxes], dtype=np.int16).reshape(n),
                   np.array([b.albedo for b in boxes], dtype=np.float32).reshape(n, 3),
                   np.array([b.variant for b in boxes], dtype=np.int64).reshape(n))

    def __len__(self) -> int:
        return len(self.yaw)

    def corners(self, k: int) -> np.ndarray:
        """World corners (8, 3) of box k."""
        return self.all_corners(np.array([k]))[0]

    def all_corners(self, which: np.ndarray | None = None) -> np.ndarray:
        """World corners (K, 8, 3) of all boxes (or of the indices ``which``)."""
        centre, half, yaw = (self.center, self.half, self.yaw) if which is None else \
            (self.center[which], self.half[which], self.yaw[which])
        local = _CORNER_SIGNS[None, :, :] * half[:, None, :]
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        x = c * local[..., 0] - s * local[..., 1]
        y = s * local[..., 0] + c * local[..., 1]
        return np.stack([x, y, local[..., 2]], axis=-1) + centre[:, None, :]


_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


# Linear-RGB palettes (sRGB colours converted by eye; albedos of real paints and walls).
CAR_COLOURS = np.array([
    [0.80, 0.80, 0.80], [0.02, 0.02, 0.025], [0.45, 0.46, 0.48], [0.15, 0.15, 0.16], [0.55, 0.03, 0.03],
    [0.03, 0.10, 0.45], [0.02, 0.04, 0.15], [0.05, 0.20, 0.08], [0.70, 0.55, 0.05], [0.45, 0.38, 0.28],
    [0.70, 0.70, 0.72], [0.30, 0.05, 0.10],
], dtype=np.float32)
WALL_COLOURS = np.array([
    [0.55, 0.48, 0.38], [0.45, 0.45, 0.45], [0.35, 0.12, 0.07], [0.60, 0.58, 0.52], [0.30, 0.30, 0.33],
    [0.50, 0.35, 0.25], [0.62, 0.55, 0.45], [0.25, 0.22, 0.20], [0.40, 0.42, 0.48],
], dtype=np.float32)
# (length, width, body height, cabin height, cabin length fraction) per vehicle type.
VEHICLE_TYPES = {
    "sedan": (4.6, 1.80, 0.95, 0.50, 0.52),
    "hatchback": (4.0, 1.75, 0.95, 0.55, 0.58),
    "suv": (4.8, 1.90, 1.10, 0.65, 0.60),
    "van": (5.2, 2.00, 1.20, 0.95, 0.80),
}


def _lane_layout(cfg: SceneConfig, rng: np.random.Generator) -> tuple[Road, int]:
    w = cfg.lane_width
    n_fwd = cfg.lanes_forward if cfg.lanes_forward is not None else int(rng.integers(1, 3))
    n_back = cfg.lanes_backward if cfg.lanes_backward is not None else int(rng.integers(1, 3))
    right, left = -n_fwd * w, n_back * w
    sw_r = cfg.sidewalk_width if cfg.sidewalk_width is not None else float(rng.uniform(2.5, 4.5))
    sw_l = cfg.sidewalk_width if cfg.sidewalk_width is not None else float(rng.uniform(2.5, 4.5))
    centres = tuple([-(k + 0.5) * w for k in range(n_fwd)] + [(k + 0.5) * w for k in range(n_back)])
    lines = [(right + 0.3, False), (left - 0.3, False)] if n_back else [(right + 0.3, False), (-0.3, False)]
    lines += [(-k * w, True) for k in range(1, n_fwd)] + [(k * w, True) for k in range(1, n_back)]
    if n_back:
        lines.append((0.0, True))  # dashed centre line between the directions
    road = Road(right, left, right - sw_r, left + sw_l, cfg.curb_height, w, centres, tuple(lines))
    return road, n_fwd


def _lighting(rng: np.random.Generator) -> Lighting:
    elevation = np.radians(rng.uniform(25.0, 65.0))
    azimuth = rng.uniform(0.0, 2 * np.pi)
    sun = (float(np.cos(elevation) * np.cos(azimuth)), float(np.cos(elevation) * np.sin(azimuth)),
           float(np.sin(elevation)))
    warmth = rng.uniform(-0.05, 0.05)
    return Lighting(sun_direction=sun,
                    sun_color=(2.6 + warmth, 2.45, 2.2 - warmth),
                    ambient=(0.55, 0.62, 0.75),
                    sky_zenith=(0.10, 0.22, 0.60),
                    sky_horizon=(0.55 + warmth, 0.68, 0.85))


def _vehicle(rng: np.random.Generator, x: float, y: float, heading: float, velocity: float,
             car_id: int) -> list[Box]:
    name = rng.choice(list(VEHICLE_TYPES), p=[0.4, 0.25, 0.25, 0.1])
    length, width, body_h, cabin_h, cabin_frac = VEHICLE_TYPES[name]
    scale = rng.uniform(0.95, 1.05)
    length, width = length * scale, width * rng.uniform(0.97, 1.03)
    colour = CAR_COLOURS[rng.integers(len(CAR_COLOURS))] * rng.uniform(0.85, 1.1)
    yaw = heading + rng.normal(0.0, np.radians(1.2))
    cab_len = length * cabin_frac
    # The cabin sits a little behind the body centre (bonnet longer than boot), along the car's heading.
    offset = -0.08 * length if name != "van" else -0.05 * length
    cx, cy = x + offset * np.cos(yaw), y + offset * np.sin(yaw)
    albedo = tuple(float(c) for c in np.clip(colour, 0.0, 0.9))
    body = Box(Kind.CAR_BODY, (x, y, body_h / 2), (length / 2, width / 2, body_h / 2), float(yaw), albedo,
               velocity, car_id)
    cabin = Box(Kind.CAR_CABIN, (cx, cy, body_h + cabin_h / 2), (cab_len / 2, width / 2 * 0.92, cabin_h / 2),
                float(yaw), albedo, velocity, car_id)
    return [body, cabin]


def _cars(cfg: SceneConfig, rng: np.random.Generator, road: Road, ego_lane: int,
          x_range: tuple[float, float], ego_speed: float, duration: float) -> list[Box]:
    if cfg.car_density <= 0:
        return []
    mean_spacing = 100.0 / cfg.car_density
    cars = []
    for lane, centre in enumerate(road.lane_centres):
        forward = centre < 0
        if lane == ego_lane:
            lane_speed = ego_speed * rng.uniform(1.0, 1.25)  # never slower than the ego: no collisions
        elif forward:
            lane_speed = max(ego_speed, 8.0) * rng.uniform(0.6, 1.3)
        else:
            lane_speed = -rng.uniform(8.0, 14.0)
        # Spawn far enough out that the lane stays populated while everything moves for `duration`.
        lo, hi = x_range[0] - abs(lane_speed) * duration, x_range[1] + abs(lane_speed) * duration
        if lane == ego_lane:
            lo = 8.0  # nothing in the ego's own lane behind or on top of it
        x = lo + rng.uniform(0.0, mean_spacing)
        while x < hi:
            cars.append((abs(x), x, centre + rng.normal(0.0, 0.15), 0.0 if forward else np.pi, lane_speed))
            # A car length plus a gap: same-lane cars share the lane speed, so they never overlap.
            x += 6.5 + rng.exponential(max(mean_spacing - 6.5, 1.0))
    cars.sort(key=lambda c: c[0])  # when capped, keep the ones near the start (those the camera sees)
    boxes: list[Box] = []
    for car_id, (_, x, y, heading, speed) in enumerate(cars[: cfg.max_cars]):
        boxes.extend(_vehicle(rng, x, y, heading, speed, car_id))
    return boxes


def _buildings(rng: np.random.Generator, road: Road, x_range: tuple[float, float]) -> list[Box]:
    boxes: list[Box] = []
    variant = 1000
    for side in (-1, 1):
        line = road.sidewalk_left if side > 0 else road.sidewalk_right
        x = x_range[0] - rng.uniform(0.0, 15.0)
        while x < x_range[1]:
            length = rng.uniform(8.0, 32.0)
            if rng.random() < 0.25:  # a gap between buildings (a side street or yard)
                x += rng.uniform(3.0, 12.0)
            depth = rng.uniform(8.0, 16.0)
            height = rng.uniform(6.0, 26.0)
            setback = rng.uniform(0.0, 1.5)
            y_near = line + side * setback
            centre = (x + length / 2, y_near + side * depth / 2, height / 2)
            colour = WALL_COLOURS[rng.integers(len(WALL_COLOURS))] * rng.uniform(0.85, 1.1)
            boxes.append(Box(Kind.BUILDING, centre, (length / 2, depth / 2, height / 2), 0.0,
                             tuple(float(c) for c in colour), 0.0, variant))
            variant += 1
            x += length
    return boxes


def _lamps(cfg: SceneConfig, rng: np.random.Generator, road: Road, x_range: tuple[float, float]) -> list[Box]:
    boxes: list[Box] = []
    if cfg.lamp_spacing <= 0:
        return boxes
    grey = (0.28, 0.29, 0.30)
    variant = 5000  # even: pole; arm variant parity says which end holds the lamp (even = +y)
    for side in (-1, 1):
        edge = road.left_edge if side > 0 else road.right_edge
        x = x_range[0] + rng.uniform(0.0, cfg.lamp_spacing)
        while x < x_range[1]:
            y = edge + side * 0.6
            height = 7.5
            boxes.append(Box(Kind.POLE, (x, y, height / 2), (0.08, 0.08, height / 2), 0.0, grey, 0.0, variant))
            # Arm reaching over the road with the lamp at its end (emissive at night).
            arm_len = 1.8
            boxes.append(Box(Kind.LAMP_ARM, (x, y - side * arm_len / 2, height - 0.1),
                             (0.12, arm_len / 2, 0.08), 0.0, grey, 0.0, variant + (2 if side < 0 else 1)))
            variant += 4
            x += cfg.lamp_spacing * rng.uniform(0.9, 1.1)
    return boxes


def _sidewalks(road: Road, x_range: tuple[float, float]) -> list[Box]:
    if road.curb_height <= 0:
        return []
    h = road.curb_height
    length = (x_range[1] - x_range[0]) + 2000.0
    cx = (x_range[0] + x_range[1]) / 2
    out = []
    for inner, outer in ((road.left_edge, road.sidewalk_left), (road.right_edge, road.sidewalk_right)):
        # Runs to the building line plus a margin under the buildings so no gap shows.
        far = outer + np.sign(outer - inner) * 20.0
        out.append(Box(Kind.SIDEWALK, (cx, (inner + far) / 2, h / 2), (length / 2, abs(far - inner) / 2, h / 2),
                       0.0, (0.32, 0.31, 0.30), 0.0, 9000 + len(out)))
    return out


def generate_scene(seed: int, config: SceneConfig | None = None, ego_speed: float = 0.0,
                   duration: float = 0.0) -> Scene:
    """Random street from ``seed``. ``ego_speed`` (m/s) and ``duration`` (s) size the layout so that a
    sequence driving for ``duration`` stays inside populated scenery and never runs into a car."""
    cfg = config or SceneConfig()
    if ego_speed < 0 or duration < 0:
        raise ValueError("generate_scene needs ego_speed >= 0 and duration >= 0")
    rng = np.random.default_rng(seed)
    road, n_fwd = _lane_layout(cfg, rng)
    ego_lane = int(rng.integers(0, n_fwd))
    ego_y = road.lane_centres[ego_lane] + float(rng.normal(0.0, 0.12))
    travel = ego_speed * duration
    x_range = (-cfg.length_behind, cfg.length_ahead + travel)
    lighting = _lighting(rng)
    boxes = _cars(cfg, rng, road, ego_lane, x_range, ego_speed, duration)
    if cfg.buildings:
        boxes += _buildings(rng, road, x_range)
    boxes += _lamps(cfg, rng, road, x_range)
    boxes += _sidewalks(road, x_range)
    return Scene(seed=seed, road=road, boxes=tuple(boxes), lighting=lighting, ego_y=ego_y, ego_x0=0.0,
                 extent=x_range, notes={"ego_lane": ego_lane, "lanes_forward": n_fwd})
