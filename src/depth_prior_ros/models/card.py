"""Model cards: the small JSON/YAML file that travels with every weights file or folder.

Where a card lives (first found wins):
  weights file ``dir/M.ext``  -> ``dir/M.card.json`` or ``dir/M.card.yaml``
  weights folder ``dir/F/``   -> ``dir/F/card.json`` or ``dir/F/card.yaml``
When no card is found the backend uses the defaults of its architecture and logs that it did.

Format (JSON shown; YAML has the same keys)::

    {
      "card_version": 1,
      "architecture": "depth_anything",          # depth_anything | jasmine | segmentation | free text
      "variant": "vitb",                         # vits | vitb | vitl | sd2 | free text
      "input_size": null,                        # [h, w] fixed network input, or null
      "short_side": 518,                         # keep-aspect: shorter side ~ this (null: native size)
      "multiple_of": 14,                         # both sides rounded to a multiple of this
      "max_input_pixels": 4000000,               # bigger network inputs are refused (the frame is dropped)
      "max_aspect_ratio": 8.0,                   # so are camera images longer than this times their width
      "layout": "NCHW",                          # graph files: NCHW | NHWC (inputs and 4-D outputs)
      "channel_order": "rgb",                    # rgb | bgr
      "scale": 0.00392156862745098,              # multiplies the 0-255 pixel values first (default 1/255)
      "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},  # after scale
      "output_kind": "affine_disparity",         # affine_disparity | scale_depth | metric_depth
      "output_index": 0, "output_channel": 0,    # graph files: which output tensor, which channel of it
      "training_data": "...", "source": "...",
      "options": {}                              # architecture-specific (see each backend)
    }

One option means the same for every architecture: ``options.disparity_offset`` (a positive number)
says the network's raw output is a disparity whose depth is ``1 / (output + disparity_offset)``: the
backend publishes that depth, of the card's ``output_kind`` (``scale_depth`` or ``metric_depth``). A
student distilled from a depth teacher is such a network: its ReLU disparity has no free shift, and
declaring it as ``affine_disparity`` would leave the alignment a shift to guess from the road alone.

A road segmenter's card has ``"architecture": "segmentation"`` and, instead of the output kind, the
class ids its output means: ``road_classes`` (required), ``drivable_classes`` and ``object_classes``
(things standing on the road: cars, people, poles), each a list of integers.
Quantised graphs (uint8/int8 tensors) need no card key: the graph carries each tensor's scale and
zero point, applied after ``scale`` and ``normalization`` (graph_runtime.quantize).
"""
from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import OUTPUT_KINDS, BackendError
from .preprocess import (CHANNEL_ORDERS, IMAGENET_MEAN, IMAGENET_STD, MAX_ASPECT_RATIO, MAX_INPUT_PIXELS,
                         SYMMETRIC_MEAN, SYMMETRIC_STD, InputSpec)

log = logging.getLogger(__name__)

CARD_VERSION = 1
SEGMENTATION = "segmentation"
LAYOUTS = ("NCHW", "NHWC")
CLASS_KEYS = ("road_classes", "drivable_classes", "object_classes")
_KNOWN_KEYS = {"card_version", "architecture", "variant", "input_size", "short_side", "multiple_of",
               "max_input_pixels", "max_aspect_ratio", "layout", "channel_order", "scale", "normalization",
               "normalisation", "output_kind", "output_index", "output_channel", *CLASS_KEYS, "training_data",
               "source", "license", "notes", "options"}


@dataclass
class ModelCard:
    architecture: str
    variant: str = ""
    output_kind: str = "affine_disparity"
    input_size: tuple[int, int] | None = None
    short_side: int | None = None
    multiple_of: int = 1
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0
    channel_order: str = "rgb"
    layout: str = "NCHW"
    max_input_pixels: int = MAX_INPUT_PIXELS
    max_aspect_ratio: float = MAX_ASPECT_RATIO
    output_index: int = 0
    output_channel: int = 0
    road_classes: tuple[int, ...] = ()
    drivable_classes: tuple[int, ...] = ()
    object_classes: tuple[int, ...] = ()
    training_data: str = "unknown"
    source: str = "unknown"
    license: str = ""
    notes: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # where the card was read from (None: built-in defaults); not written

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(input_size=self.input_size, short_side=self.short_side, multiple_of=self.multiple_of,
                         mean=self.mean, std=self.std, scale=self.scale, channel_order=self.channel_order,
                         max_input_pixels=self.max_input_pixels, max_aspect_ratio=self.max_aspect_ratio)

    @property
    def disparity_offset(self) -> float | None:
        """``options.disparity_offset``: the network outputs disparity, depth = 1 / (output + offset)."""
        value = self.options.get("disparity_offset")
        return None if value is None else float(value)

    @property
    def is_segmentation(self) -> bool:
        return self.architecture == SEGMENTATION

    def to_dict(self) -> dict[str, Any]:
        data = {
            "card_version": CARD_VERSION,
            "architecture": self.architecture,
            "variant": self.variant,
            "input_size": list(self.input_size) if self.input_size else None,
            "short_side": self.short_side,
            "multiple_of": self.multiple_of,
            "max_input_pixels": self.max_input_pixels,
            "max_aspect_ratio": self.max_aspect_ratio,
            "layout": self.layout,
            "channel_order": self.channel_order,
            "scale": self.scale,
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
        }
        if self.is_segmentation:
            data.update({key: list(getattr(self, key)) for key in CLASS_KEYS})
        else:
            data["output_kind"] = self.output_kind
        data.update({"output_index": self.output_index, "output_channel": self.output_channel,
                     "training_data": self.training_data, "source": self.source, "license": self.license,
                     "notes": self.notes, "options": copy.deepcopy(self.options)})
        return data

    def replace(self, **changes) -> "ModelCard":
        new = copy.deepcopy(self)
        for key, value in changes.items():
            if not hasattr(new, key):
                raise AttributeError(key)
            setattr(new, key, value)
        return new


def card_from_dict(data: dict[str, Any], where: str = "card") -> ModelCard:
    """Validate a parsed card; a bad field raises BackendError naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise BackendError(f"{where}: a model card must be a JSON/YAML mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown card fields %s", where, ", ".join(unknown))
    arch = data.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise BackendError(f"{where}: field 'architecture' is missing or not a string")
    kind = data.get("output_kind", "affine_disparity")
    if arch != SEGMENTATION and kind not in OUTPUT_KINDS:
        raise BackendError(f"{where}: output_kind '{kind}' is not one of {', '.join(OUTPUT_KINDS)}")
    size = data.get("input_size")
    if size is not None:
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or not all(_is_int(v) and v > 0 for v in size)):
            raise BackendError(f"{where}: input_size must be [height, width] in positive integers, got {size!r}")
        size = (int(size[0]), int(size[1]))
    short = data.get("short_side")
    if short is not None and (not _is_int(short) or short <= 0):
        raise BackendError(f"{where}: short_side must be a positive integer or null, got {short!r}")
    multiple = data.get("multiple_of", 1)
    if not _is_int(multiple) or multiple <= 0:
        raise BackendError(f"{where}: multiple_of must be a positive integer, got {multiple!r}")
    norm = data.get("normalization", data.get("normalisation", {})) or {}
    mean = _triple(norm.get("mean", IMAGENET_MEAN), where, "normalization.mean")
    std = _triple(norm.get("std", IMAGENET_STD), where, "normalization.std")
    if any(s <= 0 for s in std):
        raise BackendError(f"{where}: normalization.std must be positive, got {list(std)}")
    options = data.get("options", {}) or {}
    if not isinstance(options, dict):
        raise BackendError(f"{where}: options must be a mapping, got {type(options).__name__}")
    if options.get("disparity_offset") is not None:
        _positive_number(options["disparity_offset"], where, "options.disparity_offset")
        if kind == "affine_disparity":
            raise BackendError(f"{where}: options.disparity_offset turns the output into depth, so output_kind must "
                               "be scale_depth or metric_depth, not affine_disparity")
    layout = data.get("layout", "NCHW")
    if layout not in LAYOUTS:
        raise BackendError(f"{where}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    order = data.get("channel_order", "rgb")
    if order not in CHANNEL_ORDERS:
        raise BackendError(f"{where}: channel_order must be one of {', '.join(CHANNEL_ORDERS)}, got {order!r}")
    scale = _positive_number(data.get("scale", 1.0 / 255.0), where, "scale")
    aspect = _positive_number(data.get("max_aspect_ratio", MAX_ASPECT_RATIO), where, "max_aspect_ratio")
    pixels, index, channel = (_count(data.get(key, default), where, key, minimum) for key, default, minimum in
                              (("max_input_pixels", MAX_INPUT_PIXELS, 1), ("output_index", 0, 0),
                               ("output_channel", 0, 0)))
    classes = {key: _class_ids(data.get(key, []), where, key) for key in CLASS_KEYS}
    if arch == SEGMENTATION and not classes["road_classes"]:
        raise BackendError(f"{where}: a segmentation card needs road_classes, the class ids that mean road")
    return ModelCard(architecture=arch, variant=str(data.get("variant", "") or ""),
                     output_kind=kind if arch != SEGMENTATION else "affine_disparity",
                     input_size=size, short_side=short, multiple_of=multiple, mean=mean, std=std, scale=scale,
                     channel_order=order, layout=layout, max_input_pixels=pixels, max_aspect_ratio=aspect,
                     output_index=index, output_channel=channel, **classes,
                     training_data=str(data.get("training_data", "unknown")),
                     source=str(data.get("source", "unknown")), license=str(data.get("license", "") or ""),
                     notes=str(data.get("notes", "") or ""), options=dict(options))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value, where: str, name: str, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise BackendError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive_number(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BackendError(f"{where}: {name} must be a positive number, got {value!r}")
    return float(value)


def _class_ids(value, where: str, name: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(_is_int(v) and 0 <= v <= 255 for v in value):
        raise BackendError(f"{where}: {name} must be a list of class ids (integers 0-255), got {value!r}")
    return tuple(int(v) for v in value)


def _triple(value, where: str, name: str) -> tuple[float, float, float]:
    try:
        if isinstance(value, (str, bytes)) or any(isinstance(v, bool) for v in value):
            raise TypeError
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise BackendError(f"{where}: {name} must be three numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise BackendError(f"{where}: {name} must be three finite numbers, got {value!r}")
    return out  # type: ignore[return-value]


def card_candidates(weights: str | Path) -> list[Path]:
    """Paths where the card of ``weights`` may live, in lookup order."""
    p = Path(weights)
    if p.is_dir():
        return [p / "card.json", p / "card.yaml", p / "card.yml"]
    return [p.with_suffix(".card.json"), p.with_suffix(".card.yaml"), p.with_suffix(".card.yml")]


def card_path_for(weights: str | Path) -> Path:
    """Where a card for ``weights`` is written: ``M.card.json`` beside a file, ``card.json`` in a folder."""
    return card_candidates(weights)[0]


def read_card(path: str | Path) -> ModelCard:
    """Parse one card file (JSON, or YAML by extension)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BackendError(f"cannot read model card {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise BackendError(f"model card {p} is not valid {'YAML' if p.suffix != '.json' else 'JSON'}: "
                           f"{str(exc).splitlines()[0]}") from None
    card = card_from_dict(data, where=str(p))
    card.path = str(p)
    return card


def find_card(weights: str | Path) -> ModelCard | None:
    """The card beside/inside ``weights``, or None."""
    for candidate in card_candidates(weights):
        if candidate.is_file():
            return read_card(candidate)
    return None


def write_card(card: ModelCard, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return p


# ----------------------------------------------------------------------------------------- defaults

def default_card(architecture: str, variant: str = "") -> ModelCard:
    """The card assumed when a weights file has none (the published preprocessing of each family)."""
    if architecture == "depth_anything":
        # Depth Anything: shorter side 518, multiple of the 14 px patch, ImageNet statistics,
        # relative inverse depth (affine-invariant disparity).
        return ModelCard(architecture="depth_anything", variant=variant or "vitb", output_kind="affine_disparity",
                         short_side=518, multiple_of=14, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         training_data="unknown (no model card)", source="unknown (no model card)")
    if architecture == "jasmine":
        # Jasmine: KITTI 320x1024, SD VAE input in [-1, 1], scale-invariant depth from the GRU.
        return ModelCard(architecture="jasmine", variant=variant or "sd2", output_kind="scale_depth",
                         input_size=(320, 1024), multiple_of=64, mean=SYMMETRIC_MEAN, std=SYMMETRIC_STD,
                         training_data="KITTI Eigen-Zhou (self-supervised)", source="unknown (no model card)",
                         options={"link_mode": "first"})
    raise BackendError(f"no default model card for architecture '{architecture}'")


def load_card(weights: str | Path | None, architecture: str, variant: str = "", card_path: str = "") -> ModelCard:
    """The card at ``card_path`` (a backend's ``card`` option), else the card of ``weights``, else (logged)
    the architecture's default; the architecture must match."""
    card = read_card(card_path) if card_path else find_card(weights) if weights else None
    if card is None:
        if weights:
            log.info("no model card beside %s (looked for %s): using %s defaults", weights,
                     ", ".join(c.name for c in card_candidates(weights)[:2]), architecture)
        return default_card(architecture, variant)
    if card.architecture != architecture:
        raise BackendError(f"model card {card.path} is for architecture '{card.architecture}', "
                           f"but this backend runs '{architecture}'")
    return card
