"""The node parameters, declared once: name, type, default, range or choices, description, runtime flag.

Everything else comes from ``SPEC``: the nodes' declarations (``ros/params.py`` adds the rclpy
descriptors), the parsing into the core's config objects and the nodes' settings, ``config/default.yaml``
and the README's parameter table (``python -m depth_prior_ros.parameters --write`` regenerates both; a
test fails while they are stale). Plain Python, no ROS import. Every check raises
:class:`ParameterError` with one sentence naming the parameter; the nodes turn it into a start-up
failure (exit status 2).

Adding a parameter: one ``Param`` below, with ``target`` naming where its value goes, then its use.
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .align import AlignConfig
from .depth_range import check_depth_range
from .fusion import FUSION_MODES
from .ground_pose import PoseRefineConfig
from .geometry.extrinsics import pose_from_static
from .pipeline import PipelineConfig
from .prior.scene import PRIOR_MODES

DEPTH_NODE, PRIOR_NODE = "depth_node", "prior_node"
MAX_RANGE_M = 10_000.0  # no camera depth reaches 10 km; larger values only overflow float32 maths
BOTH = (DEPTH_NODE, PRIOR_NODE)


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


@dataclass(frozen=True)
class Param:
    """One parameter. ``target`` is "section.field": pose | qos | pipeline | align | ground_pose (the core's config
    objects) or "node.field" (a field of the node's settings)."""

    name: str
    default: bool | int | float | str
    description: str
    group: str
    target: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    open_minimum: bool = False  # the minimum itself is not allowed (0 < value)
    runtime: bool = False       # may change while the node runs
    nodes: tuple[str, ...] = (DEPTH_NODE,)

    @property
    def type(self) -> type:
        return type(self.default)

    def check(self, value):
        """``value`` with this parameter's type (ints pass for floats: YAML writes 2, not 2.0), in range."""
        expected = self.type
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if type(value) is not expected:
            kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[expected]
            raise ParameterError(f"parameter '{self.name}' must be {kind}, got {shown(value)}")
        if expected is float and not math.isfinite(value):
            raise ParameterError(f"parameter '{self.name}' must be finite, got {value}")
        if self.choices and value not in self.choices:
            raise ParameterError(f"parameter '{self.name}' must be one of {', '.join(self.choices)}, "
                                 f"got {shown(value)}")
        low_ok = self.minimum is None or (value > self.minimum if self.open_minimum else value >= self.minimum)
        if not low_ok or (self.maximum is not None and value > self.maximum):
            raise ParameterError(f"parameter '{self.name}' must be {self.range_text()}, got {value}")
        return value

    def range_text(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.open_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return " and ".join(parts) or " | ".join(self.choices)


def shown(value, limit: int = 60) -> str:
    """A value as an error message may show it: quoted and escaped (no newline can forge a log line),
    at most ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _p(name, default, description, group, target, **kw) -> Param:
    return Param(name, default, description, group, target, **kw)


SPEC: tuple[Param, ...] = (
    # depth network
    _p("backend", "prior_only", "Depth network by registry name: prior_only | ssd_student | jasmine | onnx | tflite | "
       "openvino.",
       "depth network", "node.backend"),
    _p("weights", "", "Path to the weights file or folder ('' = none); checked at start.", "depth network",
       "node.weights"),
    _p("device", "auto", "Inference device: auto | cpu | cuda | cuda:N.", "depth network", "node.device"),
    _p("dtype", "fp16", "Inference precision (fp16/bf16 fall back to fp32 on CPU).", "depth network",
       "node.dtype", choices=("fp32", "fp16", "bf16")),
    _p("backend_options", "{}", "JSON object of backend-specific options, e.g. '{\"input_size\": [518, 924]}' "
       "(quote it on the command line: -p 'backend_options:=\"{}\"').",
       "depth network", "node.backend_options"),
    # camera input
    _p("image_transport", "raw", "raw: subscribe image (sensor_msgs/Image); compressed: image/compressed "
       "(sensor_msgs/CompressedImage, JPEG or PNG) beside the resolved image topic.", "camera input",
       "node.image_transport", choices=("raw", "compressed"), nodes=BOTH),
    _p("camera_info_tolerance", 0.01, "Seconds an image stamp may differ from its camera_info's (exact stamps "
       "pair first; a camera_info stamped 0 pairs with any image).", "camera input",
       "node.camera_info_tolerance", minimum=0.0, maximum=10.0, nodes=BOTH),
    # camera pose above the road
    _p("ground_frame", "base_footprint", "tf frame whose z = 0 plane is the road (REP 120 base_footprint).",
       "camera pose above the road", "pose.ground_frame", nodes=BOTH),
    _p("use_tf", True, "Look up ground_frame <- image frame in tf at the image stamp (tf2_ros, else the node's own "
       "/tf and /tf_static subscriptions); false: the static camera_* parameters.",
       "camera pose above the road", "pose.use_tf", nodes=BOTH),
    _p("tf_timeout", 0.05, "Seconds to wait for the transform at the image stamp.", "camera pose above the road",
       "pose.tf_timeout", minimum=0.0, maximum=10.0, nodes=BOTH, runtime=True),
    _p("camera_height", 1.5, "Static extrinsics: optical centre height above the road in metres.",
       "camera pose above the road", "pose.camera_height", minimum=0.0, open_minimum=True, maximum=100.0,
       nodes=BOTH, runtime=True),
    _p("camera_pitch_deg", 0.0, "Static extrinsics: pitch in degrees, > 0 tilted down towards the road.",
       "camera pose above the road", "pose.camera_pitch_deg", minimum=-90.0, maximum=90.0, nodes=BOTH, runtime=True),
    _p("camera_roll_deg", 0.0, "Static extrinsics: roll in degrees, > 0 right side down.",
       "camera pose above the road", "pose.camera_roll_deg", minimum=-180.0, maximum=180.0, nodes=BOTH, runtime=True),
    _p("camera_yaw_deg", 0.0, "Static extrinsics: yaw in degrees, > 0 turned left.", "camera pose above the road",
       "pose.camera_yaw_deg", minimum=-180.0, maximum=180.0, nodes=BOTH, runtime=True),
    # prior and alignment
    _p("min_depth", 0.5, "Smallest published depth in metres (nearer values become NaN).", "prior and alignment",
       "pipeline.min_depth", minimum=0.0, open_minimum=True, maximum=MAX_RANGE_M, nodes=BOTH, runtime=True),
    _p("max_depth", 80.0, "Largest published depth in metres (farther values become NaN).", "prior and alignment",
       "pipeline.max_depth", minimum=0.0, open_minimum=True, maximum=MAX_RANGE_M, nodes=BOTH, runtime=True),
    _p("prior_mode", "scene", "What the embodied prior covers.", "prior and alignment", "pipeline.prior_mode",
       choices=PRIOR_MODES, nodes=BOTH, runtime=True),
    _p("use_road_mask", False, "Subscribe to road_mask (mono8, nonzero = road) and use it for the prior.",
       "prior and alignment", "node.use_road_mask", nodes=BOTH),
    _p("inpaint", True, "Fill the prior where no road/ground/vertical estimate exists (from the nearest one): "
       "the published prior without a network, the fusion's prior with one.",
       "prior and alignment", "pipeline.inpaint", nodes=BOTH, runtime=True),
    # road segmentation
    _p("segmentation_weights", "", "Road segmenter: a graph file (.xml + .bin, .onnx, .tflite) or a transformers "
       "SegFormer folder ('' = none); its mask feeds the prior and is published as prior/road_mask.",
       "road segmentation", "node.segmentation_weights", nodes=BOTH),
    _p("segmentation_every", 1, "Segment every N-th frame and reuse the mask in between (rate divisor).",
       "road segmentation", "node.segmentation_every", minimum=1, nodes=BOTH),
    _p("segmentation_card", "", "The segmenter's model card ('' = the card beside the weights).",
       "road segmentation", "node.segmentation_card", nodes=BOTH),
    _p("align_inlier_threshold", 0.1, "Relative depth error counted as agreement with the prior.",
       "prior and alignment", "align.inlier_threshold", minimum=0.0, open_minimum=True, maximum=10.0, runtime=True),
    _p("align_max_samples", 4000, "Pixels sampled for the robust alignment fit.", "prior and alignment",
       "align.max_samples", minimum=50, maximum=1_000_000, runtime=True),
    _p("temporal_filter", True, "Smooth the alignment scale over frames.", "prior and alignment",
       "pipeline.temporal_filter", runtime=True),
    _p("filter_alpha", 0.3, "EMA weight of a new scale measurement (log space).", "prior and alignment",
       "pipeline.filter_alpha", minimum=0.0, open_minimum=True, maximum=1.0, runtime=True),
    _p("filter_gate", 0.25, "Reject scale jumps larger than this (log scale) ...", "prior and alignment",
       "pipeline.filter_gate", minimum=0.0, open_minimum=True, maximum=10.0, runtime=True),
    _p("filter_reset_after", 5, "... unless this many come in a row (then the filter restarts).",
       "prior and alignment", "pipeline.filter_reset_after", minimum=1, maximum=10_000, runtime=True),
    _p("filter_window", 3, "Running median over this many accepted scale measurements before the EMA.",
       "prior and alignment", "pipeline.filter_window", minimum=1, maximum=100, runtime=True),
    _p("fusion", "confidence", "Per-pixel fusion of the aligned network with the prior where they agree "
       "(off: the aligned network alone); depth/confidence is published either way.", "prior and alignment",
       "pipeline.fusion", choices=FUSION_MODES, runtime=True),
    _p("pose_refinement", True, "Estimate the camera's pitch and roll (and height for metric depth) to the road "
       "each frame from the network's road pixels, relative to the given pose (scale_depth, metric_depth).",
       "prior and alignment", "pipeline.pose_refinement"),
    _p("pose_refine_affine", False, "Refine the pose for affine_disparity predictions too, through the stream's "
       "filtered alignment (one frame alone cannot tell pitch from shift).", "prior and alignment",
       "ground_pose.affine"),
    _p("pose_refine_max_deg", 3.0, "Bound on the refined pitch and roll offsets from the given pose, in degrees.",
       "prior and alignment", "ground_pose.max_offset_deg", minimum=0.0, maximum=30.0),
    # outputs
    _p("output_encoding", "32FC1", "Depth encoding: 32FC1 metres with NaN unknown, 16UC1 millimetres with 0 unknown.",
       "outputs", "node.output_encoding", choices=("32FC1", "16UC1"), runtime=True),
    _p("publish_colored", True, "Publish depth/colored (rgb8 turbo colormap) when someone subscribes.", "outputs",
       "node.publish_colored", runtime=True),
    _p("colored_max_depth", 0.0, "Depth in metres shown as the far end of depth/colored's colour map (0 = max_depth).",
       "outputs", "node.colored_max_depth", minimum=0.0, maximum=MAX_RANGE_M, runtime=True),
    _p("publish_points", True, "Publish depth/points (PointCloud2) when someone subscribes.", "outputs",
       "node.publish_points", runtime=True),
    _p("points_decimation", 4, "Keep every N-th pixel in rows and columns for depth/points.", "outputs",
       "node.points_decimation", minimum=1, maximum=1024, runtime=True),
    _p("publish_prior", True, "Publish prior/depth (32FC1) when someone subscribes.", "outputs",
       "node.publish_prior", runtime=True),
    # transport and diagnostics
    _p("qos_reliability", "best_effort", "Input subscription reliability (best_effort: the sensor-data profile; "
       "reliable over a network); per topic: qos_overrides.<topic>.subscription.*.",
       "transport and diagnostics", "qos.reliability", choices=("best_effort", "reliable"), nodes=BOTH),
    _p("qos_depth", 1, "Subscription history depth.", "transport and diagnostics", "qos.depth", minimum=1,
       maximum=10_000, nodes=BOTH),
    # Faster than 10 Hz spins a core on diagnostics; slower than an hour overflows no timer but tells nothing.
    _p("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", "transport and diagnostics",
       "node.diagnostics_period", minimum=0.1, maximum=3600.0, nodes=BOTH),
)
PARAMS: dict[str, Param] = {p.name: p for p in SPEC}


def node_parameters(node: str) -> list[Param]:
    """The parameters ``node`` (DEPTH_NODE or PRIOR_NODE) declares, in declaration order."""
    return [p for p in SPEC if node in p.nodes]


def node_defaults(node: str) -> dict[str, object]:
    return {p.name: p.default for p in node_parameters(node)}


# Names rclpy and the ROS tools set on every node themselves: never the user's typo.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service", "start_parameter_services",
                      "start_parameter_event_publisher")
ROS_OWN_PREFIXES = ("qos_overrides.",)


def check_known_names(names, node: str) -> None:
    """ParameterError for the first of ``names`` that ``node`` does not declare, with the closest
    known name: an unknown ``-p camera_heigth:=1.2`` would otherwise be ignored without a word."""
    import difflib

    known = [p.name for p in node_parameters(node)]
    for name in names:
        if name in known or name in ROS_OWN_PARAMETERS or name.startswith(ROS_OWN_PREFIXES):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else " (README: Parameters lists them)"
        raise ParameterError(f"{node} has no parameter {shown(name)}{hint}")


# --------------------------------------------------------------------------- the nodes' settings
@dataclass(frozen=True)
class PoseSettings:
    ground_frame: str
    use_tf: bool
    tf_timeout: float
    camera_height: float
    camera_pitch_deg: float
    camera_roll_deg: float
    camera_yaw_deg: float

    def static_pose(self) -> np.ndarray:
        """T_ground_from_camera (4, 4) from the static parameters."""
        return pose_from_static(self.camera_height, math.radians(self.camera_pitch_deg),
                                math.radians(self.camera_roll_deg), math.radians(self.camera_yaw_deg))


@dataclass(frozen=True)
class QosSettings:
    reliability: str
    depth: int


@dataclass
class PriorNodeSettings:
    pose: PoseSettings
    pipeline: PipelineConfig
    qos: QosSettings
    use_road_mask: bool
    image_transport: str
    camera_info_tolerance: float
    segmentation_weights: str
    segmentation_every: int
    segmentation_card: str
    diagnostics_period: float

    def segmenter(self):
        """The road segmenter named by segmentation_weights (None when empty); ParameterError (one
        sentence) when it cannot be loaded, since no retry fixes a wrong file."""
        if not self.segmentation_weights:
            return None
        from .models.base import BackendError
        from .models.segmentation import load_segmenter

        try:
            segmenter = load_segmenter(self.segmentation_weights, self.segmentation_card)
            segmenter.segment(np.zeros((360, 640, 3), np.uint8))  # compiles the graph: the first frame is not slow
        except BackendError as exc:
            raise ParameterError(f"parameter 'segmentation_weights': {exc}") from exc
        return segmenter


@dataclass
class DepthNodeSettings(PriorNodeSettings):
    backend: str
    weights: str
    device: str
    dtype: str
    backend_options: dict
    output_encoding: str
    publish_colored: bool
    colored_max_depth: float
    publish_points: bool
    points_decimation: int
    publish_prior: bool

    def backend_kwargs(self) -> dict:
        """Keyword options for ``create_backend(self.backend, **kwargs)``."""
        return {"weights": self.weights, "device": self.device, "dtype": self.dtype, **self.backend_options}


_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ParameterError(message)


def _check_backend(node: dict, check_files: bool) -> None:
    """The depth network's parameters, which depend on the registry and the file system."""
    from .models.registry import available_backends

    known = available_backends()
    _require(node["backend"] in known, f"parameter 'backend' names unknown backend {shown(node['backend'])} "
                                       f"(available: {', '.join(known)})")
    weights = node["weights"].strip()
    if weights:
        path = Path(weights).expanduser()
        _require(not check_files or path.exists(), f"parameter 'weights': {shown(weights, 200)} does not exist")
        weights = str(path)
    node["weights"] = weights
    _require(bool(_DEVICE_PATTERN.match(node["device"])), f"parameter 'device' must be auto, cpu, cuda or cuda:N, "
                                                          f"got {shown(node['device'])}")
    try:
        options = json.loads(node["backend_options"] or "{}")
    except json.JSONDecodeError as exc:
        raise ParameterError(f"parameter 'backend_options' is not valid JSON "
                             f"({exc.msg} at position {exc.pos})") from exc
    _require(isinstance(options, dict), "parameter 'backend_options' must be a JSON object like {\"key\": value}")
    clash = sorted(set(options) & {"weights", "device", "dtype"})
    _require(not clash, f"parameter 'backend_options' must not repeat '{clash[0] if clash else ''}'; "
                        "set that parameter instead")
    node["backend_options"] = options
    if check_files:  # what retrying the load cannot fix stops the node now (an unknown option, no weights)
        from .models.base import BackendError
        from .models.registry import check_backend_options

        try:
            check_backend_options(node["backend"], {"weights": weights, "device": node["device"],
                                                    "dtype": node["dtype"], **options})
        except BackendError as exc:
            raise ParameterError(str(exc)) from None


def _check_paths(node: dict, check_files: bool) -> None:
    """Path parameters: trimmed, ~ expanded, and (with ``check_files``) existing."""
    for name in ("segmentation_weights", "segmentation_card"):
        value = node[name].strip()
        if value:
            path = Path(value).expanduser()
            _require(not check_files or path.exists(), f"parameter '{name}': '{value}' does not exist")
            value = str(path)
        node[name] = value


def parse_params(node: str, values: dict, check_files: bool = True) -> PriorNodeSettings | DepthNodeSettings:
    """Parameter values (name -> value; missing names take defaults, others are ignored) -> the node's
    settings; with ``check_files`` the weights path must exist."""
    sections: dict[str, dict] = defaultdict(dict)
    for param in node_parameters(node):
        section, field_name = param.target.split(".")
        sections[section][field_name] = param.check(values.get(param.name, param.default))
    _require(bool(sections["pose"]["ground_frame"].strip()), "parameter 'ground_frame' must name a tf frame")
    pipeline = sections["pipeline"]
    try:
        check_depth_range(pipeline["min_depth"], pipeline["max_depth"])
    except ValueError:
        raise ParameterError(f"parameters 'min_depth' ({pipeline['min_depth']}) and 'max_depth' "
                             f"({pipeline['max_depth']}) must satisfy 0 < min_depth < max_depth") from None
    _check_paths(sections["node"], check_files)
    if node == DEPTH_NODE:
        _check_backend(sections["node"], check_files)
    settings = DepthNodeSettings if node == DEPTH_NODE else PriorNodeSettings
    return settings(pose=PoseSettings(**sections["pose"]), qos=QosSettings(**sections["qos"]),
                    pipeline=PipelineConfig(**pipeline, align=AlignConfig(**sections["align"]),
                                            pose=PoseRefineConfig(**sections["ground_pose"])), **sections["node"])


def parse_depth_params(values: dict, check_files: bool = True) -> DepthNodeSettings:
    return parse_params(DEPTH_NODE, values, check_files)


def parse_prior_params(values: dict) -> PriorNodeSettings:
    return parse_params(PRIOR_NODE, values)


# --------------------------------------------------------------------------- generated documents
def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else repr(value)


def default_yaml() -> str:
    """config/default.yaml: every parameter with its default, grouped, for any node name (/**)."""
    lines = ["# depth_prior_ros parameters and their defaults, generated from depth_prior_ros/parameters.py",
             "# (python -m depth_prior_ros.parameters --write). It applies to any node name and namespace (/**):",
             "# prior_node reads its subset and ignores the rest. Copy it and change what your vehicle needs.",
             "# Floating-point values need a decimal point: ROS 2 rejects 1 for a double parameter.",
             "/**:", "  ros__parameters:"]
    group = None
    for p in SPEC:
        if p.group != group:
            group = p.group
            lines += ([""] if lines[-1] != "  ros__parameters:" else []) + [f"    # --- {group}"]
        entry = f"    {p.name}: {_yaml_value(p.default)}"
        lines.append(f"{entry:<36}# {p.description}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's parameter table."""
    rows = ["| parameter | default | allowed | runtime | nodes | meaning |", "|---|---|---|---|---|---|"]
    for p in SPEC:
        default = _yaml_value(p.default).strip('"')
        nodes = "both" if p.nodes == BOTH else "depth_node"
        allowed = " \\| ".join(f"`{c}`" for c in p.choices) or p.range_text() or p.type.__name__
        rows.append(f"| `{p.name}` | `{default or chr(34) * 2}` | {allowed} | {'yes' if p.runtime else 'no'} | "
                    f"{nodes} | {p.description.replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"


TABLE_BEGIN, TABLE_END = "<!-- parameters: begin (generated) -->\n", "<!-- parameters: end -->\n"


def generated_files(repo: Path) -> dict[Path, str]:
    """{path: the content it must have} for the files generated from SPEC."""
    readme = repo / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    return {repo / "config" / "default.yaml": default_yaml(),
            readme: head + TABLE_BEGIN + markdown_table() + TABLE_END + tail}


def main(argv: list[str]) -> int:
    repo = Path(argv[argv.index("--repo") + 1]) if "--repo" in argv else Path.cwd()
    stale = [path for path, content in generated_files(repo).items() if path.read_text(encoding="utf-8") != content]
    if "--write" in argv:
        for path, content in generated_files(repo).items():
            path.write_text(content, encoding="utf-8")
        print(f"wrote {', '.join(str(p) for p in stale) or 'nothing (up to date)'}")
        return 0
    print("\n".join(f"stale: {p}" for p in stale) or "up to date")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
