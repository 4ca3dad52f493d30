"""Shared pre/post-processing for the torch and graph-runtime backends and the road segmenter.

A network sees a resized, scaled and normalised tensor in the card's channel order; its output is
resized back to the camera image. Sizes follow the model card: either a fixed ``input_size`` (h, w), or
"keep the aspect ratio, shorter side about ``short_side``, both sides a multiple of ``multiple_of``" (14
for a ViT patch, 8/64 for a latent diffusion model), never more than ``max_input_pixels`` and only for
camera images within ``max_aspect_ratio`` (a 2000x2 image would otherwise make a 518x518000 input).
Torch is imported inside the functions so that importing this module is cheap.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .base import BackendError, NetworkInputRejected, Prediction

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# mean 0.5, std 0.5 maps [0, 1] to [-1, 1] (Stable Diffusion VAE input).
SYMMETRIC_MEAN = (0.5, 0.5, 0.5)
SYMMETRIC_STD = (0.5, 0.5, 0.5)

DTYPES = ("fp32", "fp16", "bf16")
CHANNEL_ORDERS = ("rgb", "bgr")
MAX_INPUT_PIXELS = 4_000_000  # 4 megapixels: above any depth network's native input, far below a blow-up
MAX_ASPECT_RATIO = 8.0        # wider (or taller) camera images than 8:1 are refused


@dataclass(frozen=True)
class InputSpec:
    """How a network wants its input.

    input_size: fixed (h, w) (the image is stretched to it), or None for keep-aspect resizing.
    short_side: keep-aspect target of the shorter image side; None keeps the native size.
    multiple_of: both network sides are rounded to a multiple of this.
    scale: multiplies the 0-255 pixel values first (1/255: [0, 1]; 1: raw 0-255 values).
    mean, std: per-channel normalisation after ``scale``, in ``channel_order`` (rgb | bgr).
    max_input_pixels, max_aspect_ratio: bounds on the network input and the camera image's shape.
    """

    input_size: tuple[int, int] | None = None
    short_side: int | None = None
    multiple_of: int = 1
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    scale: float = 1.0 / 255.0
    channel_order: str = "rgb"
    max_input_pixels: int = MAX_INPUT_PIXELS
    max_aspect_ratio: float = MAX_ASPECT_RATIO


def round_to_multiple(value: float, multiple: int) -> int:
    """Nearest multiple of ``multiple`` to ``value``, at least ``multiple``."""
    return max(multiple, int(round(value / multiple)) * multiple)


def network_size(height: int, width: int, spec: InputSpec) -> tuple[int, int]:
    """Network input (h, w) for a camera image of (height, width).

    Fixed size wins; otherwise scale so the shorter side is ``short_side`` (aspect kept) and round both
    sides to ``multiple_of``. E.g. 900x1600 with short_side 518, multiple 14 -> (518, 924).
    A camera image beyond ``max_aspect_ratio`` or a network input over ``max_input_pixels`` raises
    NetworkInputRejected (the frame is dropped, nothing is allocated).
    """
    aspect = max(height, width) / max(min(height, width), 1)
    if aspect > spec.max_aspect_ratio:
        raise NetworkInputRejected(f"a {width}x{height} image has aspect ratio {aspect:.3g}:1, beyond the model "
                                   f"card's max_aspect_ratio {spec.max_aspect_ratio:g}")
    if spec.input_size is not None:
        size = int(spec.input_size[0]), int(spec.input_size[1])
    else:
        scale = 1.0 if spec.short_side is None else spec.short_side / min(height, width)
        m = max(1, int(spec.multiple_of))
        size = round_to_multiple(height * scale, m), round_to_multiple(width * scale, m)
    if size[0] * size[1] > spec.max_input_pixels:
        raise NetworkInputRejected(f"a {width}x{height} image needs a {size[1]}x{size[0]} network input "
                                   f"({size[0] * size[1] / 1e6:.3g} megapixels): more than {spec.max_input_pixels:,} "
                                   f"pixels, the model card's max_input_pixels {spec.max_input_pixels}")
    return size


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate one camera image: uint8 RGB (H, W, 3); anything else is a one-sentence BackendError."""
    if not isinstance(image, np.ndarray):
        raise BackendError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise BackendError(f"image must be RGB with shape (H, W, 3), got shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise BackendError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise BackendError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return image


def images_to_tensor(images: Sequence[np.ndarray], device, scale: float = 1.0 / 255.0,
                     channel_order: str = "rgb") -> "torch.Tensor":
    """uint8 RGB images, all (H, W, 3) -> float32 (B, 3, H, W), pixel values times ``scale``, channels
    in ``channel_order`` (rgb | bgr), on ``device``.

    The uint8 array is uploaded first (4x less traffic than float) and converted on the device.
    """
    import torch

    batch = np.stack([np.ascontiguousarray(check_image(im)) for im in images])
    tensor = torch.from_numpy(batch).to(device, non_blocking=True).permute(0, 3, 1, 2)
    if channel_order == "bgr":
        tensor = tensor.flip(1)
    return tensor.float().mul_(scale)


def resize(tensor: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """Bilinear resize of (B, C, H, W) to ``size``; antialiased when shrinking so small inputs don't alias."""
    import torch.nn.functional as F

    if tuple(tensor.shape[-2:]) == tuple(size):
        return tensor
    shrinking = size[0] < tensor.shape[-2] or size[1] < tensor.shape[-1]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def normalize(tensor: "torch.Tensor", mean: Sequence[float], std: Sequence[float]) -> "torch.Tensor":
    """(B, 3, H, W) in [0, 1] -> (x - mean) / std per channel."""
    import torch

    m = torch.tensor(mean, dtype=tensor.dtype, device=tensor.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=tensor.dtype, device=tensor.device).view(1, -1, 1, 1)
    return (tensor - m) / s


def preprocess(images: Sequence[np.ndarray], spec: InputSpec, device, dtype=None) -> "torch.Tensor":
    """Same-size uint8 RGB images -> normalised network input (B, 3, h, w) in ``dtype`` on ``device``."""
    size = network_size(*check_image(images[0]).shape[:2], spec)
    pixels = images_to_tensor(images, device, spec.scale, spec.channel_order)
    pixels = normalize(resize(pixels, size), spec.mean, spec.std)
    return pixels if dtype is None else pixels.to(dtype)


def postprocess(output: "torch.Tensor", size: tuple[int, int]) -> np.ndarray:
    """Network output (B, h, w) or (B, 1, h, w) -> float32 numpy (B, H, W) at the camera size (bilinear)."""
    import torch.nn.functional as F

    out = output.float()
    if out.dim() == 3:
        out = out.unsqueeze(1)
    if out.dim() != 4 or out.shape[1] != 1:
        raise BackendError(f"network output has shape {tuple(output.shape)}, expected (B, H, W) or (B, 1, H, W)")
    if tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
    return out[:, 0].cpu().numpy().astype(np.float32, copy=False)


def disparity_to_depth(disparity: np.ndarray, offset: float) -> np.ndarray:
    """Raw disparity (any shape) -> depth 1 / (max(disparity, 0) + offset), float32; NaN stays NaN.

    The network's ReLU keeps its output >= 0; the clamp only guards interpolation and fp16 round-off, so
    the depth never exceeds 1 / offset.
    """
    d = np.asarray(disparity, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        return (np.float32(1.0) / (np.maximum(d, np.float32(0.0)) + np.float32(offset))).astype(np.float32, copy=False)


def predict_by_size(images: Sequence[np.ndarray], predict_same_size, kind: str,
                    disparity_offset: float | None = None) -> list[Prediction]:
    """Camera images of any sizes -> Predictions in input order (NaN marks pixels not valid).

    ``predict_same_size(images, (H, W))`` runs each group of same-size images as one batch and returns
    their float32 values (B, H, W). ``disparity_offset`` (the card's ``options.disparity_offset``): the
    values are disparity and the Predictions carry their depth (``disparity_to_depth``).
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(check_image(image).shape[:2], []).append(index)
    results: list = [None] * len(images)
    for size, indices in groups.items():
        for i, values in zip(indices, predict_same_size([images[i] for i in indices], size)):
            if disparity_offset is not None:
                values = disparity_to_depth(values, disparity_offset)
            finite = np.isfinite(values)
            results[i] = Prediction(values=values, kind=kind, valid=None if finite.all() else finite)
    return results


def resolve_device(device: str = "auto") -> "torch.device":
    """"auto" -> cuda when available, else cpu; "cuda"/"cuda:N" must exist (one-sentence error if not)."""
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendError(f"device '{device}' was requested but this torch build sees no CUDA GPU")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(f"device '{device}' does not exist (found {torch.cuda.device_count()} GPUs)")
        return dev
    if name == "cpu":
        return torch.device("cpu")
    raise BackendError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N")


def resolve_dtype(dtype: str, device) -> "torch.dtype":
    """fp32/fp16/bf16 -> torch dtype; half precisions only on CUDA (CPU falls back to fp32 with a log line)."""
    import torch

    name = (dtype or "fp32").strip().lower()
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "half": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if name not in table:
        raise BackendError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}")
    chosen = table[name]
    if chosen != torch.float32 and torch.device(device).type != "cuda":
        log.info("dtype %s requested on %s: running in fp32 (half precision is for CUDA only)", name, device)
        return torch.float32
    return chosen


def dtype_name(dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))
