"""A small TF tree for bags: static and timed transforms, lookups through parents, slerp in time.

tf2 semantics without tf2: every frame has at most one parent; an edge ``parent -> child`` stores
T_parent_from_child (the ``transform`` of a geometry_msgs/TransformStamped whose header.frame_id is the
parent). ``lookup(target, source, stamp)`` returns T_target_from_source, which maps points in the
source frame into the target frame. Timed edges are interpolated (linear translation, slerp rotation)
or taken from the nearest sample; asking outside the recorded time span by more than
``max_extrapolation`` seconds is an error, like tf2's ExtrapolationException.

Stamps are integer nanoseconds (what bags store); ``None`` means "latest".
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from .extrinsics import invert_transform, matrix_to_quaternion, pose_from_transform, quaternion_to_matrix

LOOKUP_MODES = ("interpolate", "nearest")


class TfLookupError(LookupError):
    """A transform that the tree cannot give (unknown frame, no path, stamp out of range)."""

    def __str__(self) -> str:  # LookupError quotes its argument; one plain sentence reads better
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- pure math
def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w) (4,) at t in [0, 1] -> (4,).

    Takes the short way round (q and -q are the same rotation).
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    dot = float(q0 @ q1)
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: linear interpolation is exact enough and avoids 0/0
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    s = np.sin(theta)
    return (np.sin((1.0 - t) * theta) * q0 + np.sin(t * theta) * q1) / s


def interpolate_transform(T0: np.ndarray, T1: np.ndarray, t: float) -> np.ndarray:
    """Rigid transforms (4, 4) at t in [0, 1]: linear translation, slerp rotation -> (4, 4)."""
    q0 = np.array(matrix_to_quaternion(T0[:3, :3]))
    q1 = np.array(matrix_to_quaternion(T1[:3, :3]))
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(*slerp(q0, q1, t))
    out[:3, 3] = (1.0 - t) * T0[:3, 3] + t * T1[:3, 3]
    return out


def transform_from_msg(transform) -> np.ndarray:
    """geometry_msgs/Transform (any object with .translation.x.. and .rotation.x..w) -> (4, 4)."""
    tr, rot = transform.translation, transform.rotation
    return pose_from_transform((tr.x, tr.y, tr.z), (rot.x, rot.y, rot.z, rot.w))


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


# --------------------------------------------------------------------------- edges
@dataclass
class _Edge:
    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)  # sorted, only for timed edges
    transforms: list[np.ndarray] = field(default_factory=list)

    def at(self, stamp: int | None, mode: str, max_extrapolation_ns: int | None, child: str) -> np.ndarray:
        if self.static or stamp is None:
            return self.transforms[-1]
        stamps = self.stamps
        if stamp <= stamps[0] or stamp >= stamps[-1]:
            end = 0 if stamp <= stamps[0] else len(stamps) - 1
            gap = abs(stamp - stamps[end])
            if max_extrapolation_ns is not None and gap > max_extrapolation_ns:
                raise TfLookupError(
                    f"transform {self.parent} -> {child} is known from {stamps[0] / 1e9:.3f} s to "
                    f"{stamps[-1] / 1e9:.3f} s, not at {stamp / 1e9:.3f} s ({gap / 1e9:.3f} s outside)")
            return self.transforms[end]
        i = bisect.bisect_right(stamps, stamp)  # stamps[i-1] <= stamp < stamps[i]
        t0, t1 = stamps[i - 1], stamps[i]
        if mode == "nearest":
            return self.transforms[i - 1] if stamp - t0 <= t1 - stamp else self.transforms[i]
        if stamp == t0:
            return self.transforms[i - 1]
        return interpolate_transform(self.transforms[i - 1], self.transforms[i], (stamp - t0) / (t1 - t0))


class TfTree:
    """Frames joined by static or timed transforms; ``lookup`` chains them through common ancestors.

    mode: "interpolate" (slerp between the two samples around the stamp) or "nearest".
    max_extrapolation: seconds a lookup may fall outside a timed edge's samples (then the end sample is
    used); ``None`` allows any distance, 0 none (tf2's rule: only an exact stamp at either end).
    cache_time: seconds of samples a timed edge keeps behind its newest one (tf2's Buffer keeps 10 s);
    ``None`` keeps everything (a bag read once).
    """

    def __init__(self, mode: str = "interpolate", max_extrapolation: float | None = 0.5,
                 cache_time: float | None = None):
        if mode not in LOOKUP_MODES:
            raise ValueError(f"tf lookup mode '{mode}' is not one of {', '.join(LOOKUP_MODES)}")
        self.mode = mode
        self.max_extrapolation_ns = None if max_extrapolation is None else int(max_extrapolation * 1e9)
        self.cache_ns = None if cache_time is None else int(cache_time * 1e9)
        self._edges: dict[str, _Edge] = {}  # child -> edge to its parent

    # ----------------------------------------------------------------- building
    def add(self, parent: str, child: str, T_parent_from_child: np.ndarray, stamp: int | None = None,
            static: bool = False) -> None:
        """Add one transform. Static edges keep the latest value; timed edges keep every sample."""
        parent, child = _clean(parent), _clean(child)
        if not parent or not child:
            raise ValueError("a transform needs both a parent frame and a child frame name")
        if parent == child:
            raise ValueError(f"frame '{child}' cannot be its own parent")
        T = np.asarray(T_parent_from_child, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"transform {parent} -> {child} is not a finite 4x4 matrix")
        edge = self._edges.get(child)
        if edge is not None and edge.parent != parent:
            # tf2 also lets the newest parent win; a re-parented frame keeps only the new edge.
            edge = None
        if self._creates_cycle(parent, child):
            raise ValueError(f"transform {parent} -> {child} would make a loop in the tf tree")
        if static or stamp is None:
            self._edges[child] = _Edge(parent, True, [], [T])
            return
        if edge is None or edge.static:
            edge = self._edges[child] = _Edge(parent, False)
        i = bisect.bisect_left(edge.stamps, stamp)
        if i < len(edge.stamps) and edge.stamps[i] == stamp:
            edge.transforms[i] = T
        else:
            edge.stamps.insert(i, int(stamp))
            edge.transforms.insert(i, T)
        if self.cache_ns is not None:  # a live stream: forget what is older than the cache window
            old = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_ns)
            if old:
                del edge.stamps[:old], edge.transforms[:old]

    def add_transform_stamped(self, msg, static: bool = False) -> None:
        """geometry_msgs/TransformStamped (rosbags or rclpy object) -> one edge sample."""
        self.add(msg.header.frame_id, msg.child_frame_id, transform_from_msg(msg.transform),
                 None if static else stamp_to_ns(msg.header.stamp), static)

    def add_tf_message(self, msg, static: bool = False) -> None:
        """tf2_msgs/TFMessage: every transform it carries."""
        for ts in msg.transforms:
            self.add_transform_stamped(ts, static)

    # ----------------------------------------------------------------- queries
    @property
    def frames(self) -> set[str]:
        return set(self._edges) | {e.parent for e in self._edges.values()}

    def parent(self, frame: str) -> str | None:
        edge = self._edges.get(_clean(frame))
        return edge.parent if edge else None

    def has_frame(self, frame: str) -> bool:
        return _clean(frame) in self.frames

    def is_static_path(self, target: str, source: str) -> bool:
        """True when every edge between the two frames is static."""
        up, down = self._path(_clean(target), _clean(source))
        return all(self._edges[f].static for f in up + down)

    def lookup(self, target: str, source: str, stamp: int | None = None) -> np.ndarray:
        """T_target_from_source (4, 4) at ``stamp`` (ns; None = latest sample of every edge)."""
        target, source = _clean(target), _clean(source)
        if target == source:
            return np.eye(4)
        up_target, up_source = self._path(target, source)
        T_common_from_source = self._chain(up_source, stamp)
        T_common_from_target = self._chain(up_target, stamp)
        return invert_transform(T_common_from_target) @ T_common_from_source

    def lookup_between(self, target: str, target_stamp: int | None, source: str, source_stamp: int | None,
                       fixed_frame: str) -> np.ndarray:
        """T_target(target_stamp)_from_source(source_stamp) through a frame fixed in the world (tf2's
        advanced lookup): use it to move a LiDAR scan taken at one time into a camera image taken at
        another while the vehicle drives."""
        T_fixed_from_source = self.lookup(fixed_frame, source, source_stamp)
        T_fixed_from_target = self.lookup(fixed_frame, target, target_stamp)
        return invert_transform(T_fixed_from_target) @ T_fixed_from_source

    # ----------------------------------------------------------------- internals
    def _ancestors(self, frame: str) -> list[str]:
        """[frame, parent, grandparent, ..., root]."""
        chain = [frame]
        while chain[-1] in self._edges:
            chain.append(self._edges[chain[-1]].parent)
        return chain

    def _creates_cycle(self, parent: str, child: str) -> bool:
        return child in self._ancestors(parent)

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        """Frames whose parent edges lead from target and from source up to their common ancestor."""
        known = self.frames
        for name in (target, source):
            if name not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise TfLookupError(f"frame '{name}' is not in the tf tree (known frames: {listed})")
        a_target, a_source = self._ancestors(target), self._ancestors(source)
        common = next((f for f in a_target if f in set(a_source)), None)
        if common is None:
            raise TfLookupError(f"frames '{target}' and '{source}' are not connected in the tf tree "
                                f"(roots '{a_target[-1]}' and '{a_source[-1]}')")
        return a_target[:a_target.index(common)], a_source[:a_source.index(common)]

    def _chain(self, frames: list[str], stamp: int | None) -> np.ndarray:
        """T_ancestor_from_frames[0] along frames (each frame's edge to its parent)."""
        T = np.eye(4)
        for frame in reversed(frames):  # from the ancestor down to the start frame
            edge = self._edges[frame]
            T = T @ edge.at(stamp, self.mode, self.max_extrapolation_ns, frame)
        return T


def _clean(frame: str) -> str:
    """tf2 ignores a leading slash in frame ids ("/base_link" == "base_link")."""
    return str(frame).lstrip("/")
