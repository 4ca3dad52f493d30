"""Road segmentation (the VLE camera embodiment, live): camera image -> class ids -> road mask.

Two kinds of segmenter, chosen by what ``weights`` is:
- a graph file (OpenVINO ``.xml`` + ``.bin``, ``.onnx``, ``.tflite``) through the graph runtimes shared
  with the depth backends (graph_backend.GraphModel), with a segmentation card (``architecture:
  segmentation``, ``road_classes``, optional ``drivable_classes`` / ``object_classes``); its output is
  per-class scores (NCHW or NHWC by the card's layout: the class axis) or class ids;
- a ``transformers`` SegFormer folder (``config.json`` with model_type ``segformer`` + weights), e.g. a
  Cityscapes fine-tune. Its card is ``card.json`` in the folder or, without one, read off the config's
  ``id2label`` names (road; road, parking; people, riders, vehicles, poles and signs as objects).
Class ids are taken at the network's resolution and resized to the camera image nearest-neighbour.

``SegmentationSchedule`` runs a segmenter on every N-th frame and reuses the mask between (the rate
divisor of the node's ``segmentation_every``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .base import BackendError
from .card import SEGMENTATION, ModelCard, card_from_dict, find_card, read_card
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, check_image

log = logging.getLogger(__name__)

# id2label names (lower case) of a SegFormer config that mean each mask, for folders without a card.
ROAD_NAMES = ("road",)
DRIVABLE_NAMES = ("road", "parking")
OBJECT_NAMES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle", "pole",
                "traffic light", "traffic sign")


@dataclass
class Segmentation:
    """labels: uint8 (H, W) class ids at the camera size; card: the classes they mean."""

    labels: np.ndarray
    card: ModelCard

    def _mask(self, classes: tuple[int, ...]) -> np.ndarray:
        return np.isin(self.labels, np.asarray(classes, dtype=np.uint8))

    @property
    def road(self) -> np.ndarray:
        """bool (H, W): the road classes."""
        return self._mask(self.card.road_classes)

    @property
    def drivable(self) -> np.ndarray:
        """bool (H, W): the drivable classes (the road classes when the card names none)."""
        return self._mask(self.card.drivable_classes or self.card.road_classes)

    @property
    def objects(self) -> np.ndarray:
        """bool (H, W): things standing on the road (empty when the card names none)."""
        return self._mask(self.card.object_classes)


class Segmenter(Protocol):
    card: ModelCard

    def segment(self, image: np.ndarray) -> Segmentation:
        """uint8 RGB (H, W, 3) -> Segmentation at (H, W)."""

    def describe(self) -> dict[str, Any]:
        """Card and runtime for logs and diagnostics."""


def labels_from_scores(scores: np.ndarray, layout: str) -> np.ndarray:
    """One image's output -> uint8 (h, w) class ids.

    scores: (1, C, h, w) | (C, h, w) per-class scores for NCHW, (1, h, w, C) | (h, w, C) for NHWC, or
    integer class ids (1, h, w) | (1, 1, h, w) | (h, w).
    """
    values = np.asarray(scores)
    if np.issubdtype(values.dtype, np.integer):
        return np.squeeze(values).astype(np.uint8)
    values = values[0] if values.ndim == 4 else values
    if values.ndim != 3:
        raise BackendError(f"a segmentation output of shape {list(np.shape(scores))} is neither class scores nor "
                           "class ids")
    return np.argmax(values, axis=2 if layout == "NHWC" else 0).astype(np.uint8)


def to_camera_size(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (h, w) class ids -> (height, width), nearest neighbour (ids must not be blended)."""
    import cv2

    if labels.shape == (height, width):
        return labels
    return cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)


class GraphSegmenter:
    """A segmentation graph (OpenVINO, ONNX, LiteRT) and its card."""

    def __init__(self, weights: str, card: str = "", device: str = "auto", dtype: str = "fp32", threads: int = 0):
        from .graph_backend import load_graph

        self.weights = weights
        self.model, self.card_conflicts = load_graph(Path(weights), device, dtype, card, threads, segmentation=True)
        self.card = self.model.card

    def scores(self, image: np.ndarray) -> np.ndarray:
        """The raw output the card names for one image (class scores or ids at the network size)."""
        return self.model.output(self.model.run(self.model.input_tensor([check_image(image)])))

    def segment(self, image: np.ndarray) -> Segmentation:
        labels = labels_from_scores(self.scores(image), self.card.layout)
        return Segmentation(to_camera_size(labels, image.shape[0], image.shape[1]), self.card)

    def describe(self) -> dict[str, Any]:
        info = {"segmenter": self.weights, **self.model.runtime.describe(), "card_path": self.card.path,
                "road_classes": list(self.card.road_classes)}
        if self.card_conflicts:
            info["card_conflicts"] = self.card_conflicts
        return info


def card_from_id2label(id2label: dict, where: str) -> ModelCard:
    """A segmentation card from a transformers config's class names (ImageNet statistics, shorter side
    512, sides a multiple of 32: SegFormer's Cityscapes preprocessing)."""
    names = {int(i): str(n).strip().lower() for i, n in id2label.items()}

    def ids(wanted: tuple[str, ...]) -> list[int]:
        return sorted(i for i, n in names.items() if n in wanted and i <= 255)

    data = {"architecture": SEGMENTATION, "variant": "segformer", "short_side": 512, "multiple_of": 32,
            "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "road_classes": ids(ROAD_NAMES), "drivable_classes": ids(DRIVABLE_NAMES),
            "object_classes": ids(OBJECT_NAMES), "source": f"{where} (config id2label)"}
    if not data["road_classes"]:
        raise BackendError(f"{where} has no card and no class named 'road' in its id2label; write a card.json "
                           "with road_classes")
    return card_from_dict(data, where=where)


class SegformerSegmenter:
    """A ``transformers`` SegFormer folder (SegformerForSemanticSegmentation), on torch."""

    def __init__(self, folder: str, card: str = "", device: str = "auto", dtype: str = "fp32"):
        import torch
        from transformers import SegformerForSemanticSegmentation

        from .preprocess import resolve_device, resolve_dtype

        path = Path(folder)
        config = _read_json(path / "config.json")
        if config.get("model_type") != "segformer":
            raise BackendError(f"{path} is a folder but not a SegFormer model (config.json model_type is "
                               f"{config.get('model_type')!r}, expected 'segformer')")
        self.card = read_card(card) if card else find_card(path)
        if self.card is None:
            self.card = card_from_id2label(config.get("id2label") or {}, str(path))
            log.info("no card in %s: road classes %s from its id2label", path, list(self.card.road_classes))
        if not self.card.is_segmentation:
            raise BackendError(f"card {self.card.path} is for architecture '{self.card.architecture}', "
                               "not 'segmentation'")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        try:
            net = SegformerForSemanticSegmentation.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, RuntimeError) as exc:
            raise BackendError(f"SegFormer folder {path} cannot be loaded: "
                               f"{(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
        self.net = net.eval().requires_grad_(False).to(self.device, self.dtype)
        self._torch = torch
        self.weights = str(path)

    def logits(self, image: np.ndarray):
        """(1, C, h/4, w/4) class logits for one image (torch, on the segmenter's device)."""
        from .preprocess import preprocess

        pixels = preprocess([check_image(image)], self.card.input_spec, self.device, self.dtype)
        with self._torch.inference_mode():
            return self.net(pixel_values=pixels).logits

    def segment(self, image: np.ndarray) -> Segmentation:
        labels = self.logits(image)[0].argmax(dim=0).to(self._torch.uint8).cpu().numpy()
        return Segmentation(to_camera_size(labels, image.shape[0], image.shape[1]), self.card)

    def describe(self) -> dict[str, Any]:
        return {"segmenter": self.weights, "runtime": f"torch ({self.device})",
                "card_path": self.card.path or "from id2label", "road_classes": list(self.card.road_classes)}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise BackendError(f"{path} is not a JSON object")
    return data


def load_segmenter(weights: str, card: str = "", device: str = "auto", dtype: str = "fp32",
                   threads: int = 0) -> Segmenter:
    """A graph file -> GraphSegmenter; a folder -> SegformerSegmenter. BackendError (one sentence) otherwise."""
    path = Path(weights)
    if path.is_dir():
        return SegformerSegmenter(weights, card, device, dtype)
    if not path.is_file():
        raise BackendError(f"segmentation weights {weights} do not exist")
    return GraphSegmenter(weights, card, device, dtype, threads)


class SegmentationSchedule:
    """Segments every ``every``-th frame and reuses the road mask in between (``ran``: this frame ran it)."""

    def __init__(self, segmenter: Segmenter, every: int = 1):
        if every < 1:
            raise ValueError(f"segmentation rate divisor must be >= 1, got {every}")
        self.segmenter, self.every = segmenter, int(every)
        self.reset()

    def reset(self) -> None:
        self._since = 0  # frames since the mask was made
        self._mask: np.ndarray | None = None
        self.ran = False

    def road_mask(self, image: np.ndarray) -> np.ndarray:
        """bool (H, W) road mask for this frame: a new one every ``every`` frames (and after a size change)."""
        stale = self._mask is None or self._mask.shape != image.shape[:2]
        self.ran = stale or self._since >= self.every
        if self.ran:
            self._mask = self.segmenter.segment(image).road
            self._since = 0
        self._since += 1
        return self._mask
