"""Model cards: the small JSON/YAML file that travels with every weights file or folder.

Where a card lives (first found wins):
  weights file ``dir/M.ext``  -> ``dir/M.card.json`` or ``dir/M.card.yaml``
  weights folder ``dir/F/``   -> ``dir/F/card.json`` or ``dir/F/card.yaml``
When no card is found the backend uses the defaults of its architecture and logs that it did.

Format (JSON shown; YAML has the same keys)::

    {
      "card_version": 1,
      "architecture": "depth_anything",          # depth_anything | jasmine
      "variant": "vitb",                         # vits | vitb | vitl | sd2 | free text
      "input_size": null,                        # [h, w] fixed network input, or null
      "short_side": 518,                         # keep-aspect: shorter side ~ this (null: native size)
      "multiple_of": 14,                         # both sides rounded to a multiple of this
      "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
      "output_kind": "affine_disparity",         # affine_disparity | scale_depth | metric_depth
      "training_data": "...", "source": "...",
      "options": {}                              # architecture-specific (see each backend)
    }
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
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, SYMMETRIC_MEAN, SYMMETRIC_STD, InputSpec

log = logging.getLogger(__name__)

CARD_VERSION = 1
_KNOWN_KEYS = {"card_version", "architecture", "variant", "input_size", "short_side", "multiple_of",
               "normalization", "normalisation", "output_kind", "training_data", "source", "license",
               "notes", "options"}


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
    training_data: str = "unknown"
    source: str = "unknown"
    license: str = ""
    notes: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    path: str | None = None  # where the card was read from (None: built-in defaults); not written

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(input_size=self.input_size, short_side=self.short_side, multiple_of=self.multiple_of,
                         mean=self.mean, std=self.std)

    def to_dict(self) -> dict[str, Any]:
        return {
            "card_version": CARD_VERSION,
            "architecture": self.architecture,
            "variant": self.variant,
            "input_size": list(self.input_size) if self.input_size else None,
            "short_side": self.short_side,
            "multiple_of": self.multiple_of,
            "normalization": {"mean": list(self.mean), "std": list(self.std)},
            "output_kind": self.output_kind,
            "training_data": self.training_data,
            "source": self.source,
            "license": self.license,
            "notes": self.notes,
            "options": copy.deepcopy(self.options),
        }

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
    if kind not in OUTPUT_KINDS:
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
    return ModelCard(architecture=arch, variant=str(data.get("variant", "") or ""), output_kind=kind,
                     input_size=size, short_side=short, multiple_of=multiple, mean=mean, std=std,
                     training_data=str(data.get("training_data", "unknown")),
                     source=str(data.get("source", "unknown")), license=str(data.get("license", "") or ""),
                     notes=str(data.get("notes", "") or ""), options=dict(options))


def _is_int(value) -> bool:
    """An integer that is not a bool (JSON true is a Python int)."""
    return isinstance(value, int) and not isinstance(value, bool)


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


def load_card(weights: str | Path | None, architecture: str, variant: str = "") -> ModelCard:
    """The card of ``weights`` or, logged, the architecture's default; the architecture must match."""
    card = find_card(weights) if weights else None
    if card is None:
        if weights:
            log.info("no model card beside %s (looked for %s): using %s defaults", weights,
                     ", ".join(c.name for c in card_candidates(weights)[:2]), architecture)
        return default_card(architecture, variant)
    if card.architecture != architecture:
        raise BackendError(f"model card {card.path} is for architecture '{card.architecture}', "
                           f"but this backend runs '{architecture}'")
    return card
