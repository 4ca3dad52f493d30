"""Depth Anything (DINOv2 encoder + DPT head) through transformers: the ``ssd_student`` backend.

The SSD night/rain student is a Depth Anything ViT-B; the same network runs ViT-S/B/L, Depth Anything
v1/v2 relative models and metric models. Weights it loads (``DepthAnythingNet.from_pretrained``):

(a) a Hugging Face model folder: ``config.json`` + ``model.safetensors`` (or an index of shards);
(b) a released Depth-Anything ``.pth`` state dict (``pretrained.*`` / ``depth_head.*`` keys), read
    with ``torch.load(weights_only=True)``; the architecture is read off the tensor shapes;
(c) a ``.safetensors`` of the transformers module's state dict + its model card (the training
    package's format; ``options.hf_config`` in the card pins the exact config when present).

Nothing the tensors cannot tell is guessed: V1 or V2 (which DINOv2 blocks feed the head) and relative or
metric output come from the card, else from the release file name (``depth_anything_v2_vits.pth``,
``depth_anything_vits14.pth``, ``depth_anything_v2_metric_vkitti_vitl.pth``), else the load is refused;
``describe()["settings"]`` and the log say which source decided. Networks loaded from the released .pth
resize their position embeddings the authors' way (``dinov2_position_encoding``).

Card options understood here: ``num_attention_heads``, ``out_indices``, ``version`` (1 or 2: which
DINOv2 layers feed the head), ``max_depth`` (metric cards), ``hf_config`` (a full DepthAnythingConfig
dict), ``position_resize`` ("dinov2": the authors' resize, written by save_pretrained when it applies).
"""
from __future__ import annotations

import logging
import math
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import depth_anything_keys as keys
from .base import BackendError
from .card import ModelCard, card_path_for, default_card, load_card, write_card
from .checkpoints import load_strict, read_config, read_folder_weights, read_state_dict, strip_prefix
from .registry import register_backend
from .torch_backend import TorchDepthBackend

log = logging.getLogger(__name__)

# Published sizes (DINOv2 ViT-S/B/L, patch 14; DPT neck/fusion sizes of Depth Anything).
VARIANTS: dict[str, dict[str, Any]] = {
    "vits": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
             "neck_hidden_sizes": [48, 96, 192, 384], "fusion_hidden_size": 64},
    "vitb": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "neck_hidden_sizes": [96, 192, 384, 768], "fusion_hidden_size": 128},
    "vitl": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
             "neck_hidden_sizes": [256, 512, 1024, 1024], "fusion_hidden_size": 256},
}
_VARIANT_BY_HIDDEN = {v["hidden_size"]: name for name, v in VARIANTS.items()}
# Depth Anything v2 taps intermediate layers instead of the last four (1-based hidden-state indices).
OUT_INDICES_V2 = {"vits": [3, 6, 9, 12], "vitb": [3, 6, 9, 12], "vitl": [5, 12, 18, 24]}
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_VARIANT_ALIASES = {"small": "vits", "base": "vitb", "large": "vitl", "vit-s": "vits", "vit-b": "vitb",
                    "vit-l": "vitl", "s": "vits", "b": "vitb", "l": "vitl"}


def canonical_variant(variant: str) -> str:
    v = (variant or "").strip().lower()
    return _VARIANT_ALIASES.get(v, v)


def depth_anything_config(variant: str = "vitb", *, hidden_size: int | None = None,
                          num_hidden_layers: int | None = None, num_attention_heads: int | None = None,
                          mlp_ratio: int = 4, image_size: int = 518, patch_size: int = 14,
                          out_indices: list[int] | None = None, neck_hidden_sizes: list[int] | None = None,
                          fusion_hidden_size: int | None = None, head_hidden_size: int = 32,
                          depth_estimation_type: str = "relative", max_depth: float | None = None,
                          version: int = 1):
    """A transformers DepthAnythingConfig for a published variant, any field overridable (tiny tests)."""
    from transformers import DepthAnythingConfig, Dinov2Config

    base = VARIANTS.get(canonical_variant(variant), {})
    if not base and None in (hidden_size, num_hidden_layers, neck_hidden_sizes, fusion_hidden_size):
        raise BackendError(f"unknown Depth Anything variant '{variant}'; use one of {', '.join(VARIANTS)}")
    hidden = hidden_size or base["hidden_size"]
    layers = num_hidden_layers or base["num_hidden_layers"]
    # DINOv2 uses 64-channel heads; a resized (e.g. test) model keeps that rule, not the variant's count.
    heads = num_attention_heads or (base["num_attention_heads"] if base.get("hidden_size") == hidden
                                    else max(1, hidden // 64))
    if out_indices is None:
        v2 = OUT_INDICES_V2.get(canonical_variant(variant))
        out_indices = v2 if (version == 2 and v2 and layers == base.get("num_hidden_layers")) else \
            [layers - 3, layers - 2, layers - 1, layers]
    backbone = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            mlp_ratio=mlp_ratio, image_size=image_size, patch_size=patch_size,
                            out_indices=list(out_indices), apply_layernorm=True, reshape_hidden_states=False)
    # transformers declares max_depth an int (the releases use 20 and 80)
    extra = {"max_depth": int(max_depth) if float(max_depth).is_integer() else max_depth} if max_depth else {}
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=hidden, patch_size=patch_size,
                               neck_hidden_sizes=list(neck_hidden_sizes or base["neck_hidden_sizes"]),
                               fusion_hidden_size=fusion_hidden_size or base["fusion_hidden_size"],
                               head_hidden_size=head_hidden_size, depth_estimation_type=depth_estimation_type,
                               **extra)


def architecture_from_state(state: dict, source: str, name=lambda hub_key: hub_key) -> dict[str, Any]:
    """Read hidden size, depth, MLP ratio, position grid, neck and fusion sizes off hub-named tensors.

    ``name`` maps a hub key to the spelling used in the file (for the error message).
    """

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise BackendError(f"{source} is missing key '{name(key)}' that the model needs")
        return tuple(state[key].shape)

    hidden = shape("backbone.embeddings.cls_token")[-1]
    layer_ids = {int(m.group(1)) for k in state for m in [re.match(r"backbone\.encoder\.layer\.(\d+)\.", k)] if m}
    if not layer_ids:
        raise BackendError(f"{source} has no transformer blocks (no 'pretrained.blocks.*' or "
                           f"'backbone.encoder.layer.*' keys)")
    patch = shape("backbone.embeddings.patch_embeddings.projection.weight")[-1]
    positions = shape("backbone.embeddings.position_embeddings")[1] - 1
    grid = int(round(math.sqrt(positions)))
    fc1 = shape("backbone.encoder.layer.0.mlp.fc1.weight")[0]
    return {
        "hidden_size": hidden,
        "num_hidden_layers": max(layer_ids) + 1,
        "mlp_ratio": max(1, fc1 // hidden),
        "patch_size": patch,
        "image_size": grid * patch,
        "neck_hidden_sizes": [shape(f"neck.reassemble_stage.layers.{i}.projection.weight")[0] for i in range(4)],
        "fusion_hidden_size": shape("neck.convs.0.weight")[0],
        "head_hidden_size": shape("head.conv2.weight")[0],
    }


# Config keys that would make transformers fetch a backbone from the Hub or build a timm model:
# a model card is data, it must never send the loader to the network.
_REMOTE_CONFIG_KEYS = ("use_pretrained_backbone", "backbone", "use_timm_backbone", "backbone_kwargs")


def _config_from_card(hf_config: dict, source: str):
    """DepthAnythingConfig from a card's hf_config, refusing Hub-loading keys; errors as one BackendError."""
    from transformers import DepthAnythingConfig

    remote = [k for k in _REMOTE_CONFIG_KEYS if hf_config.get(k)]
    if remote:
        raise BackendError(f"{source}: the model card's hf_config sets {', '.join(remote)}, which would load a "
                           f"backbone from the network; remove it (weights are always loaded from local files)")
    try:
        return DepthAnythingConfig(**hf_config)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types for a malformed config
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BackendError(f"{source}: the model card's hf_config is not a valid Depth Anything config ({first})") from None


# The release file names (Depth-Anything's and Depth-Anything-V2's READMEs and transformers' converter).
V1_RELEASE = re.compile(r"depth_anything_(vit[sbl])14\.pth")
V2_RELEASE = re.compile(r"depth_anything_v2_(?:metric_(hypersim|vkitti)_)?(vit[sbl])\.pth")
# Depth-Anything-V2 metric_depth/README.md: max_depth 20 for the indoor (Hypersim) models, 80 for outdoor (VKITTI).
METRIC_MAX_DEPTH = {"hypersim": 20, "vkitti": 80}


def release_name_settings(path: Path) -> dict[str, Any]:
    """What a released Depth Anything file name says (version, variant, metric range); {} for other names."""
    if m := V1_RELEASE.fullmatch(path.name):
        return {"version": 1, "variant": m[1]}
    if m := V2_RELEASE.fullmatch(path.name):
        return {"version": 2, "variant": m[2], **({"max_depth": METRIC_MAX_DEPTH[m[1]]} if m[1] else {})}
    return {}


def config_for_state(state: dict, card: ModelCard, path: Path, name=lambda hub_key: hub_key):
    """(DepthAnythingConfig, which sources decided it) for a hub-named state dict without a config.json.

    The tensors prove the sizes and, for the published sizes, the variant and its head count. What they
    cannot tell -- V1 or V2 (which blocks feed the head) and relative or metric output -- comes from the
    card, else from the release file name; otherwise the load is refused with one sentence.
    """
    opts = card.options if card.path else {}
    if isinstance(opts.get("hf_config"), dict):
        return _config_from_card(opts["hf_config"], str(path)), "the card's hf_config"
    arch = architecture_from_state(state, str(path), name)
    size = (arch["hidden_size"], arch["num_hidden_layers"])
    proven = next((v for v, s in VARIANTS.items() if (s["hidden_size"], s["num_hidden_layers"]) == size), "")
    named, card_name = release_name_settings(path), Path(card.path or card_path_for(path)).name
    for who, said in ((f"the card {card_name}", canonical_variant(card.variant) if card.path else ""),
                      ("its file name", named.get("variant", ""))):
        if said in VARIANTS and said != proven:
            raise BackendError(f"{path}: {who} says variant '{said}' but its tensors are "
                               f"{proven + '-sized' if proven else 'not a published Depth Anything size'}")
    heads = opts.get("num_attention_heads") or VARIANTS.get(proven, {}).get("num_attention_heads")
    if "version" in opts or "out_indices" in opts:
        version, version_from = int(opts.get("version", 0)), f"the card {card_name}"
    elif named:
        version, version_from = named["version"], "the file name"
    else:
        raise BackendError(f"{path} does not say whether it is Depth Anything V1 or V2 (same keys and shapes): "
                           f"add {card_name} with options.version, or keep its release name (e.g. "
                           f"depth_anything_v2_vits.pth)")
    if not heads or (version == 2 and not proven and "out_indices" not in opts):
        raise BackendError(f"{path}: a {size[0]}-wide, {size[1]}-block ViT is not a published Depth Anything "
                           f"size; give options.num_attention_heads and out_indices in {card_name}")
    metric = card.output_kind == "metric_depth" if card.path else "max_depth" in named
    max_depth = opts.get("max_depth") if card.path else named.get("max_depth")
    if metric and max_depth is None:
        raise BackendError(f"{path}: the card {card_name} says metric_depth but gives no options.max_depth")
    output_from = f"the card {card_name}" if card.path else "the file name"
    config = depth_anything_config(proven or "custom", num_attention_heads=heads, out_indices=opts.get("out_indices"),
                                   version=version, depth_estimation_type="metric" if metric else "relative",
                                   max_depth=max_depth if metric else None, **arch)
    taps = f"V{version}" if version else f"blocks {opts['out_indices']}"
    return config, f"{taps} from {version_from}, sizes from the tensors, " \
                   f"{'metric' if metric else 'relative'} output from {output_from}"


def _read_hf_folder(folder: Path) -> tuple[Any, dict, Path]:
    """(config, state dict, the weights file to name in errors) of a Hugging Face model folder."""
    from transformers import DepthAnythingConfig

    model_type = read_config(folder, "a Hugging Face model folder")[0].get("model_type")
    if model_type != "depth_anything":
        raise BackendError(f"{folder / 'config.json'} describes a '{model_type}' model, not depth_anything")
    state, source = read_folder_weights(folder, HF_WEIGHTS)
    return DepthAnythingConfig.from_pretrained(str(folder), local_files_only=True), state, source


def _variant_label(config) -> str:
    return _VARIANT_BY_HIDDEN.get(config.backbone_config.hidden_size, f"hidden-{config.backbone_config.hidden_size}")


def card_for_weights(weights: str | Path, variant: str = "", card_path: str = "") -> ModelCard:
    return load_card(weights, "depth_anything", canonical_variant(variant), card_path)


def dinov2_position_encoding(self, embeddings, height: int, width: int):
    """DINOv2's own resize of the position embeddings, which the released .pth files were made and run with:
    bicubic with scale factors (n + 0.1) / grid where transformers asks for the size n itself (on a V2 ViT-S
    at 518x924 the outputs differ by 1.6e-2 of their scale). Bound to a Dinov2Embeddings in place of its
    interpolate_pos_encoding."""
    positions = self.position_embeddings
    grid = math.sqrt(positions.shape[1] - 1)
    if embeddings.shape[1] == positions.shape[1] and height == width:
        return positions
    patch = self.patch_embeddings.patch_size
    table = positions.float()[:, 1:].reshape(1, int(grid), int(grid), -1).permute(0, 3, 1, 2)
    table = torch.nn.functional.interpolate(
        table, scale_factor=((int(height) // patch[0] + 0.1) / grid, (int(width) // patch[1] + 0.1) / grid),
        mode="bicubic")  # int(): a traced (ONNX) export passes the sizes as tensors
    table = table.permute(0, 2, 3, 1).reshape(1, -1, positions.shape[-1])
    return torch.cat((positions.float()[:, :1], table), dim=1).to(positions.dtype)


class DepthAnythingNet(torch.nn.Module):
    """transformers' DepthAnythingForDepthEstimation (``model``) as normalised pixels (B, 3, h, w) ->
    depth-like values (B, h, w); ``layout`` says which of the weight formats it was loaded from."""

    def __init__(self, model, layout: str = "random_init"):
        super().__init__()
        self.model = model
        self.layout = layout
        self.settings = "random initialisation"  # which sources decided what the tensors cannot tell
        self.dinov2_positions = False

    @property
    def config(self):
        return self.model.config

    def forward(self, pixels):
        return self.model(pixel_values=pixels, return_dict=True).predicted_depth

    @classmethod
    def from_config(cls, config) -> "DepthAnythingNet":
        """Random initial weights of the architecture ``config`` (a DepthAnythingConfig) describes."""
        from transformers import DepthAnythingForDepthEstimation

        return cls(DepthAnythingForDepthEstimation(config).eval())

    @classmethod
    def from_pretrained(cls, weights: str | Path, card: ModelCard | None = None) -> "DepthAnythingNet":
        """Build the network for local ``weights`` (any of the three formats) and load them strictly;
        ``card`` defaults to the one beside the weights. A bad file is one BackendError sentence."""
        path = Path(weights)
        if not path.exists():
            raise BackendError(f"weights {path} do not exist")
        card = card or card_for_weights(path)
        if path.is_dir():
            config, state, source = _read_hf_folder(path)
            layout = "huggingface_folder"
        else:
            state = strip_prefix(strip_prefix(read_state_dict(path), "module."), "model.")
            layout = "depth_anything_original" if keys.is_original_layout(state) else "transformers_state_dict"
            source, config = path, None
        original = layout == "depth_anything_original"
        file_uses_proj_names = keys.module_uses_proj_names(state.keys())
        state = keys.original_to_hub(state, str(source)) if original else keys.to_hub_names(state)

        def name_in_file(hub_key: str) -> str:
            """A hub key as the user's file spells it (for error messages)."""
            return keys.hub_key_to_original(hub_key) if original else keys.hub_key_to_module(hub_key,
                                                                                              file_uses_proj_names)

        config, net_settings = (config, "config.json") if config else config_for_state(state, card, path, name_in_file)
        with torch.device("meta"):  # no memory or time for initial values: load_strict hands over the file's tensors
            net = cls.from_config(config)
        net.layout, net.settings = layout, net_settings
        if original or card.options.get("position_resize") == "dinov2":
            net.resize_positions_like_dinov2()
        log.info("%s: Depth Anything %s, %s", source, _variant_label(config), net_settings)
        proj_names = keys.module_uses_proj_names(net.model.state_dict().keys())
        module_state = {keys.hub_key_to_module(k, proj_names): v for k, v in state.items()}
        load_strict(net.model, module_state, source, original_name=lambda k: name_in_file(keys.module_key_to_hub(k)),
                    what=f"Depth Anything {_variant_label(net.config)} model")
        return net

    def resize_positions_like_dinov2(self) -> None:
        """Resize position embeddings at other input sizes the way the authors' DINOv2 code does."""
        embeddings = self.model.backbone.embeddings
        embeddings.interpolate_pos_encoding = types.MethodType(dinov2_position_encoding, embeddings)
        self.dinov2_positions = True

    def save_pretrained(self, path: str | Path, card: ModelCard | None = None) -> Path:
        """Write format (c): ``path`` (.safetensors of the transformers module's state dict) and, beside it,
        ``card`` (default: the architecture's) with the full config in ``options.hf_config``."""
        from safetensors.torch import save_file

        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}, str(p))
        card = card or default_card("depth_anything", _variant_label(self.config))
        options = dict(card.options, hf_config=self.config.to_dict(), **({"position_resize": "dinov2"}
                                                                           if self.dinov2_positions else {}))
        write_card(card.replace(options=options, path=None), card_path_for(p))
        return p


@dataclass
class DepthAnythingOptions:
    """Options of ``create_backend("ssd_student", ...)`` (the node's ``backend_options``).

    weights: HF folder | original .pth | .safetensors (+ card); empty only with random_init (benchmarks and
    tests: the published ``variant`` sizes, or ``config`` overrides, random weights). input_size [h, w] /
    short_side override the card's network input size; card: a card path ("" = the one beside the weights).
    """

    weights: str = ""
    card: str = ""
    device: str = "auto"
    dtype: str = "fp32"
    variant: str = ""
    random_init: bool = False
    config: dict | None = None
    compile: str | bool = ""
    input_size: list[int] | None = None
    short_side: int | None = None


class SSDStudentBackend(TorchDepthBackend):
    name = "ssd_student"


@register_backend("ssd_student", DepthAnythingOptions)
def create_ssd_student(options: DepthAnythingOptions) -> SSDStudentBackend:
    """Factory behind ``create_backend("ssd_student", ...)``."""
    o = options
    if o.weights:
        card = card_for_weights(o.weights, o.variant, o.card)
        net = DepthAnythingNet.from_pretrained(o.weights, card)
    elif o.random_init:
        card = default_card("depth_anything", canonical_variant(o.variant) or "vitb")
        net = DepthAnythingNet.from_config(depth_anything_config(card.variant, **(o.config or {})))
        log.warning("ssd_student: random initialisation (no weights) - for tests and benchmarks only")
    else:
        raise BackendError("ssd_student needs weights (a Hugging Face folder, a Depth-Anything .pth or a "
                           ".safetensors with its card); set random_init only for tests and benchmarks")
    if o.input_size is not None:
        card = card.replace(input_size=(int(o.input_size[0]), int(o.input_size[1])))
    if o.short_side is not None:
        card = card.replace(short_side=int(o.short_side), input_size=None)
    info = {"layout": net.layout, "variant": _variant_label(net.config), "settings": net.settings}
    if card.path is None:  # the defaults follow what the file (or its name) says
        card = card.replace(variant=info["variant"], output_kind="metric_depth" if net.config.depth_estimation_type
                            == "metric" else "affine_disparity")
    return SSDStudentBackend(net, card, weights=o.weights, device=o.device, dtype=o.dtype, compile=o.compile,
                             extra_info=info)
