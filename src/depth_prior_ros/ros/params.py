"""Node parameters: defaults, descriptions, declaration and parsing into typed settings.

The dictionaries and the parsing are plain Python (no rclpy import), so packaging checks, the CLI and
tests can read them anywhere. Every check raises :class:`ParameterError` with one sentence that names
the parameter; the nodes turn it into a start-up failure (exit status 2).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..align import AlignConfig
from ..geometry.extrinsics import pose_from_static
from ..pipeline import PipelineConfig
from ..prior.scene import PRIOR_MODES

# Geometry and prior: shared by both nodes.
_GEOMETRY_PRIOR_DEFAULTS: dict[str, object] = {
    "ground_frame": "base_footprint",
    "use_tf": True,
    "tf_timeout": 0.05,
    "camera_height": 1.5,
    "camera_pitch_deg": 0.0,
    "camera_roll_deg": 0.0,
    "camera_yaw_deg": 0.0,
    "min_depth": 0.5,
    "max_depth": 80.0,
    "prior_mode": "scene",
    "use_road_mask": False,
    "inpaint": True,
}

# QoS and diagnostics: shared by both nodes, last in the parameter list.
_TRANSPORT_DEFAULTS: dict[str, object] = {
    "qos_reliability": "best_effort",
    "qos_depth": 1,
    "diagnostics_period": 1.0,
}

# prior_node has exactly the shared parameters.
PRIOR_NODE_DEFAULTS: dict[str, object] = {**_GEOMETRY_PRIOR_DEFAULTS, **_TRANSPORT_DEFAULTS}

# depth_node: backend + shared geometry + alignment + outputs + shared transport, in the order of the
# node interface spec.
DEPTH_NODE_DEFAULTS: dict[str, object] = {
    "backend": "prior_only",
    "weights": "",
    "device": "auto",
    "dtype": "fp16",
    "backend_options": "{}",
    **_GEOMETRY_PRIOR_DEFAULTS,
    "align_inlier_threshold": 0.1,
    "align_max_samples": 4000,
    "temporal_filter": True,
    "filter_alpha": 0.3,
    "filter_gate": 0.25,
    "filter_reset_after": 5,
    "output_encoding": "32FC1",
    "publish_colored": True,
    "publish_points": True,
    "points_decimation": 4,
    "publish_prior": True,
    **_TRANSPORT_DEFAULTS,
}

PARAMETER_DESCRIPTIONS: dict[str, str] = {
    "backend": "Depth network by registry name: prior_only | ssd_student | jasmine | onnx.",
    "weights": "Path to the weights file or folder ('' = none); checked at start.",
    "device": "Inference device: auto | cpu | cuda | cuda:N.",
    "dtype": "Inference precision: fp32 | fp16 | bf16 (fp16/bf16 fall back to fp32 on CPU).",
    "backend_options": "JSON object of backend-specific options, e.g. '{\"input_width\": 784}' "
                       "(quote it on the command line: -p 'backend_options:=\"{}\"').",
    "ground_frame": "tf frame whose z = 0 plane is the road (REP 120 base_footprint).",
    "use_tf": "Look up ground_frame <- image frame in tf (when tf2_ros is installed); else static params.",
    "tf_timeout": "Seconds to wait for the transform at the image stamp.",
    "camera_height": "Static extrinsics: optical centre height above the road in metres.",
    "camera_pitch_deg": "Static extrinsics: pitch in degrees, > 0 tilted down towards the road.",
    "camera_roll_deg": "Static extrinsics: roll in degrees, > 0 right side down.",
    "camera_yaw_deg": "Static extrinsics: yaw in degrees, > 0 turned left.",
    "min_depth": "Smallest published depth in metres (nearer values become NaN).",
    "max_depth": "Largest published depth in metres (farther values become NaN).",
    "prior_mode": "What the embodied prior covers: road | ground | scene.",
    "use_road_mask": "Subscribe to road_mask (mono8, nonzero = road) and use it for the prior.",
    "inpaint": "Fill the prior where no road/ground/vertical estimate exists (from the nearest one).",
    "align_inlier_threshold": "Relative depth error counted as agreement with the prior.",
    "align_max_samples": "Pixels sampled for the robust alignment fit.",
    "temporal_filter": "Smooth the alignment scale over frames.",
    "filter_alpha": "EMA weight of a new scale measurement (log space), in (0, 1].",
    "filter_gate": "Reject scale jumps larger than this (log scale) ...",
    "filter_reset_after": "... unless this many come in a row (then the filter restarts).",
    "output_encoding": "depth encoding: 32FC1 (metres, NaN unknown) | 16UC1 (millimetres, 0 unknown).",
    "publish_colored": "Publish depth/colored (rgb8 turbo colormap) when someone subscribes.",
    "publish_points": "Publish depth/points (PointCloud2) when someone subscribes.",
    "points_decimation": "Keep every N-th pixel in rows and columns for depth/points.",
    "publish_prior": "Publish prior/depth (32FC1) when someone subscribes.",
    "qos_reliability": "Subscription reliability: best_effort (sensor data) | reliable.",
    "qos_depth": "Subscription history depth.",
    "diagnostics_period": "Seconds between /diagnostics messages.",
}

OUTPUT_ENCODINGS = ("32FC1", "16UC1")
QOS_RELIABILITIES = ("best_effort", "reliable")
DTYPES = ("fp32", "fp16", "bf16")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


# --------------------------------------------------------------------------- typed settings
@dataclass(frozen=True)
class PoseSettings:
    ground_frame: str = "base_footprint"
    use_tf: bool = True
    tf_timeout: float = 0.05
    camera_height: float = 1.5
    camera_pitch_deg: float = 0.0
    camera_roll_deg: float = 0.0
    camera_yaw_deg: float = 0.0

    def static_pose(self) -> np.ndarray:
        """T_ground_from_camera (4, 4) from the static parameters."""
        return pose_from_static(self.camera_height, math.radians(self.camera_pitch_deg),
                                math.radians(self.camera_roll_deg), math.radians(self.camera_yaw_deg))


@dataclass(frozen=True)
class QosSettings:
    reliability: str = "best_effort"
    depth: int = 1


@dataclass
class PriorNodeSettings:
    pose: PoseSettings
    pipeline: PipelineConfig
    use_road_mask: bool
    qos: QosSettings
    diagnostics_period: float


@dataclass
class DepthNodeSettings(PriorNodeSettings):
    backend: str = "prior_only"
    weights: str = ""
    device: str = "auto"
    dtype: str = "fp16"
    backend_options: dict = field(default_factory=dict)
    output_encoding: str = "32FC1"
    publish_colored: bool = True
    publish_points: bool = True
    points_decimation: int = 4
    publish_prior: bool = True

    def backend_kwargs(self) -> dict:
        """Keyword options for ``create_backend(self.backend, **kwargs)``."""
        return {"weights": self.weights, "device": self.device, "dtype": self.dtype, **self.backend_options}


# --------------------------------------------------------------------------- parsing
def _typed(values: dict, name: str, defaults: dict):
    """Value of ``name`` with the default's type; ints are accepted for floats (YAML writes 2, not 2.0)."""
    value = values.get(name, defaults[name])
    expected = type(defaults[name])
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not expected:
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[expected]
        raise ParameterError(f"parameter '{name}' must be {kind}, got {value!r}")
    if expected is float and not math.isfinite(value):
        raise ParameterError(f"parameter '{name}' must be finite, got {value}")
    return value


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ParameterError(message)


def _parse_common(v: dict, defaults: dict) -> dict:
    get = lambda name: _typed(v, name, defaults)  # noqa: E731 - local shorthand
    pose = PoseSettings(get("ground_frame"), get("use_tf"), get("tf_timeout"), get("camera_height"),
                        get("camera_pitch_deg"), get("camera_roll_deg"), get("camera_yaw_deg"))
    _require(pose.tf_timeout >= 0, f"parameter 'tf_timeout' must be >= 0, got {pose.tf_timeout}")
    _require(pose.camera_height > 0, f"parameter 'camera_height' must be > 0 (metres above the road), "
                                     f"got {pose.camera_height}")
    _require(bool(pose.ground_frame.strip()), "parameter 'ground_frame' must name a tf frame")
    prior_mode = get("prior_mode")
    _require(prior_mode in PRIOR_MODES, f"parameter 'prior_mode' must be one of {', '.join(PRIOR_MODES)}, "
                                        f"got '{prior_mode}'")
    reliability = get("qos_reliability")
    _require(reliability in QOS_RELIABILITIES, f"parameter 'qos_reliability' must be best_effort or reliable, "
                                               f"got '{reliability}'")
    qos = QosSettings(reliability, get("qos_depth"))
    _require(qos.depth >= 1, f"parameter 'qos_depth' must be >= 1, got {qos.depth}")
    period = get("diagnostics_period")
    _require(period > 0, f"parameter 'diagnostics_period' must be > 0 seconds, got {period}")
    min_depth, max_depth = get("min_depth"), get("max_depth")
    _require(0 < min_depth < max_depth, f"parameters 'min_depth' ({min_depth}) and 'max_depth' ({max_depth}) "
                                        "must satisfy 0 < min_depth < max_depth")
    return dict(pose=pose, qos=qos, diagnostics_period=period, use_road_mask=get("use_road_mask"),
                min_depth=min_depth, max_depth=max_depth, prior_mode=prior_mode, inpaint=get("inpaint"))


def parse_prior_params(values: dict) -> PriorNodeSettings:
    """Parameter values (name -> value; missing names take defaults) -> PriorNodeSettings."""
    c = _parse_common(values, PRIOR_NODE_DEFAULTS)
    pipeline = PipelineConfig(min_depth=c["min_depth"], max_depth=c["max_depth"], prior_mode=c["prior_mode"],
                              inpaint=c["inpaint"])
    return PriorNodeSettings(c["pose"], pipeline, c["use_road_mask"], c["qos"], c["diagnostics_period"])


def parse_depth_params(values: dict, check_files: bool = True) -> DepthNodeSettings:
    """Parameter values -> DepthNodeSettings; with ``check_files`` the weights path must exist."""
    from ..models.registry import available_backends

    get = lambda name: _typed(values, name, DEPTH_NODE_DEFAULTS)  # noqa: E731
    c = _parse_common(values, DEPTH_NODE_DEFAULTS)

    backend = get("backend")
    known = available_backends()
    _require(backend in known, f"parameter 'backend' names unknown backend '{backend}' "
                               f"(available: {', '.join(known)})")
    weights = get("weights").strip()
    if weights:
        path = Path(weights).expanduser()
        _require(not check_files or path.exists(), f"parameter 'weights': '{weights}' does not exist")
        weights = str(path)
    device = get("device")
    _require(bool(_DEVICE_PATTERN.match(device)), f"parameter 'device' must be auto, cpu, cuda or cuda:N, "
                                                  f"got '{device}'")
    dtype = get("dtype")
    _require(dtype in DTYPES, f"parameter 'dtype' must be one of {', '.join(DTYPES)}, got '{dtype}'")
    try:
        options = json.loads(get("backend_options") or "{}")
    except json.JSONDecodeError as exc:
        raise ParameterError(f"parameter 'backend_options' is not valid JSON "
                             f"({exc.msg} at position {exc.pos})") from exc
    _require(isinstance(options, dict), "parameter 'backend_options' must be a JSON object like {\"key\": value}")
    clash = sorted(set(options) & {"weights", "device", "dtype"})
    _require(not clash, f"parameter 'backend_options' must not repeat '{clash[0] if clash else ''}'; "
                        "set that parameter instead")

    encoding = get("output_encoding")
    _require(encoding in OUTPUT_ENCODINGS, f"parameter 'output_encoding' must be 32FC1 or 16UC1, got '{encoding}'")
    decimation = get("points_decimation")
    _require(decimation >= 1, f"parameter 'points_decimation' must be >= 1, got {decimation}")
    threshold, samples = get("align_inlier_threshold"), get("align_max_samples")
    _require(threshold > 0, f"parameter 'align_inlier_threshold' must be > 0, got {threshold}")
    _require(samples >= 50, f"parameter 'align_max_samples' must be >= 50, got {samples}")
    alpha, gate, reset_after = get("filter_alpha"), get("filter_gate"), get("filter_reset_after")
    _require(0 < alpha <= 1, f"parameter 'filter_alpha' must be in (0, 1], got {alpha}")
    _require(gate > 0, f"parameter 'filter_gate' must be > 0, got {gate}")
    _require(reset_after >= 1, f"parameter 'filter_reset_after' must be >= 1, got {reset_after}")

    pipeline = PipelineConfig(min_depth=c["min_depth"], max_depth=c["max_depth"], prior_mode=c["prior_mode"],
                              inpaint=c["inpaint"],
                              align=AlignConfig(inlier_threshold=threshold, max_samples=samples),
                              temporal_filter=get("temporal_filter"), filter_alpha=alpha, filter_gate=gate,
                              filter_reset_after=reset_after)
    return DepthNodeSettings(c["pose"], pipeline, c["use_road_mask"], c["qos"], c["diagnostics_period"],
                             backend=backend, weights=weights, device=device, dtype=dtype,
                             backend_options=options, output_encoding=encoding,
                             publish_colored=get("publish_colored"), publish_points=get("publish_points"),
                             points_decimation=decimation, publish_prior=get("publish_prior"))


# --------------------------------------------------------------------------- rclpy side
def declare_and_read(node, defaults: dict) -> dict:
    """Declare every parameter (read-only, with its description) on an rclpy node; return name -> value.

    Parameters are read once at start, so they are declared read-only: ``ros2 param set`` then fails
    loudly instead of silently doing nothing. ``dynamic_typing`` (Galactic+) lets an integer reach
    the parser for a float parameter, which accepts it; without it rclpy's own type check applies.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for name, default in defaults.items():
        descriptor = ParameterDescriptor(description=PARAMETER_DESCRIPTIONS.get(name, ""), read_only=True)
        if hasattr(descriptor, "dynamic_typing"):
            descriptor.dynamic_typing = True
        values[name] = node.declare_parameter(name, default, descriptor).value
    return values
