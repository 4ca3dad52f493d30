"""Checkpoint key names of the Depth Anything architecture, in three spellings.

- **original**: the released Depth-Anything ``.pth`` (DINOv2 in ``pretrained.*``, DPT head in
  ``depth_head.*``; one fused ``attn.qkv`` per block; refinenet4 fuses the deepest features).
- **hub**: the Hugging Face model files (``model.safetensors`` of ``*-hf`` repos): ``backbone.*``,
  ``neck.*``, ``head.*`` with ``attention.attention.{query,key,value}`` and ``attention.output.dense``.
- **module**: what the installed transformers' module calls them; transformers 5 renamed the attention
  projections to ``attention.{q,k,v,o}_proj`` (it still reads and writes hub names in files).

Everything is converted to hub names first; hub names are turned into the module's names last.
Pure functions over ``dict[str, tensor]``; no model is built here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .base import BackendError

NUM_FUSION = 4  # DPT fuses four feature levels; refinenet{k} <-> fusion layer NUM_FUSION - k


@dataclass(frozen=True)
class _Rule:
    original: re.Pattern
    hub: re.Pattern
    original_template: str
    hub_template: str
    to_hub_index: Callable[[int], int]
    to_original_index: Callable[[int], int]


def _rule(original: str, hub: str, to_hub=lambda n: n, to_original=lambda n: n) -> _Rule:
    """Patterns use <n> (a layer index, transformed between the two spellings), <i>, <j> (indices
    copied) and <p> (weight|bias)."""
    groups = {"<n>": r"(?P<n>\d+)", "<i>": r"(?P<i>\d+)", "<j>": r"(?P<j>\d+)", "<p>": r"(?P<p>weight|bias)"}

    def compile_(template: str) -> re.Pattern:
        pattern = re.escape(template)
        for token, group in groups.items():
            pattern = pattern.replace(re.escape(token), group)
        return re.compile(pattern + r"\Z")

    def fmt(template: str) -> str:
        for token in groups:
            template = template.replace(token, "{" + token[1] + "}")
        return template

    return _Rule(compile_(original), compile_(hub), fmt(original), fmt(hub), to_hub, to_original)


_RULES = (
    _rule("pretrained.cls_token", "backbone.embeddings.cls_token"),
    _rule("pretrained.mask_token", "backbone.embeddings.mask_token"),
    _rule("pretrained.pos_embed", "backbone.embeddings.position_embeddings"),
    _rule("pretrained.patch_embed.proj.<p>", "backbone.embeddings.patch_embeddings.projection.<p>"),
    _rule("pretrained.blocks.<i>.ls1.gamma", "backbone.encoder.layer.<i>.layer_scale1.lambda1"),
    _rule("pretrained.blocks.<i>.ls2.gamma", "backbone.encoder.layer.<i>.layer_scale2.lambda1"),
    _rule("pretrained.blocks.<i>.norm1.<p>", "backbone.encoder.layer.<i>.norm1.<p>"),
    _rule("pretrained.blocks.<i>.norm2.<p>", "backbone.encoder.layer.<i>.norm2.<p>"),
    _rule("pretrained.blocks.<i>.mlp.fc1.<p>", "backbone.encoder.layer.<i>.mlp.fc1.<p>"),
    _rule("pretrained.blocks.<i>.mlp.fc2.<p>", "backbone.encoder.layer.<i>.mlp.fc2.<p>"),
    _rule("pretrained.blocks.<i>.attn.proj.<p>", "backbone.encoder.layer.<i>.attention.output.dense.<p>"),
    _rule("pretrained.norm.<p>", "backbone.layernorm.<p>"),
    _rule("depth_head.projects.<i>.<p>", "neck.reassemble_stage.layers.<i>.projection.<p>"),
    _rule("depth_head.resize_layers.<i>.<p>", "neck.reassemble_stage.layers.<i>.resize.<p>"),
    # scratch.layer1_rn .. layer4_rn are 1-based; the neck's convs are 0-based.
    _rule("depth_head.scratch.layer<n>_rn.weight", "neck.convs.<n>.weight",
          to_hub=lambda n: n - 1, to_original=lambda n: n + 1),
    # refinenet4 starts the fusion from the deepest level; transformers' fusion layer 0 does the same.
    _rule("depth_head.scratch.refinenet<n>.out_conv.<p>", "neck.fusion_stage.layers.<n>.projection.<p>",
          to_hub=lambda n: NUM_FUSION - n, to_original=lambda n: NUM_FUSION - n),
    _rule("depth_head.scratch.refinenet<n>.resConfUnit<i>.conv<j>.<p>",
          "neck.fusion_stage.layers.<n>.residual_layer<i>.convolution<j>.<p>",
          to_hub=lambda n: NUM_FUSION - n, to_original=lambda n: NUM_FUSION - n),
    _rule("depth_head.scratch.output_conv1.<p>", "head.conv1.<p>"),
    _rule("depth_head.scratch.output_conv2.0.<p>", "head.conv2.<p>"),
    _rule("depth_head.scratch.output_conv2.2.<p>", "head.conv3.<p>"),
)

_QKV = re.compile(r"pretrained\.blocks\.(?P<i>\d+)\.attn\.qkv\.(?P<p>weight|bias)\Z")
_HUB_QKV = re.compile(r"backbone\.encoder\.layer\.(?P<i>\d+)\.attention\.attention\.(?P<which>query|key|value)"
                      r"\.(?P<p>weight|bias)\Z")
_QKV_ORDER = ("query", "key", "value")  # the fused projection stacks q, k, v along its output rows

# hub <-> transformers-5 module spelling of the attention projections
_HUB_TO_MODULE = ((".attention.attention.query.", ".attention.q_proj."),
                  (".attention.attention.key.", ".attention.k_proj."),
                  (".attention.attention.value.", ".attention.v_proj."),
                  (".attention.output.dense.", ".attention.o_proj."))


def is_original_layout(state: dict) -> bool:
    """True for a released Depth-Anything .pth (``pretrained.*`` / ``depth_head.*`` keys)."""
    return any(k.startswith(("pretrained.", "depth_head.")) for k in state)


def _convert(key: str, to_hub: bool) -> str | None:
    for rule in _RULES:
        pattern, template = (rule.original, rule.hub_template) if to_hub else (rule.hub, rule.original_template)
        m = pattern.match(key)
        if m:
            values = m.groupdict()
            if values.get("n") is not None:
                n = int(values["n"])
                values["n"] = str(rule.to_hub_index(n) if to_hub else rule.to_original_index(n))
            return template.format(**values)
    return None


def hub_key_to_original(key: str) -> str:
    """One hub key -> the original key that holds it (q/k/v all live in the fused ``attn.qkv``)."""
    m = _HUB_QKV.match(key)
    if m:
        return f"pretrained.blocks.{m['i']}.attn.qkv.{m['p']}"
    return _convert(key, to_hub=False) or key


def original_to_hub(state: dict, source: str = "checkpoint") -> dict:
    """Released Depth-Anything state dict -> hub names; the fused qkv is split into query/key/value.

    Keys outside the architecture are kept unchanged so a strict load can name them.
    """
    out = {}
    for key, tensor in state.items():
        m = _QKV.match(key)
        if m:
            rows = tensor.shape[0]
            if rows % 3 or (tensor.dim() == 2 and rows != 3 * tensor.shape[1]):
                raise BackendError(f"{source}: key '{key}' has shape {tuple(tensor.shape)}, which is not a fused "
                                   f"query/key/value projection (3*D rows)")
            for which, part in zip(_QKV_ORDER, tensor.chunk(3, dim=0)):
                out[f"backbone.encoder.layer.{m['i']}.attention.attention.{which}.{m['p']}"] = part.clone()
            continue
        out[_convert(key, to_hub=True) or key] = tensor
    return out


def module_uses_proj_names(module_keys) -> bool:
    return any(".attention.q_proj." in k for k in module_keys)


def hub_key_to_module(key: str, proj_names: bool) -> str:
    if proj_names:
        for hub, module in _HUB_TO_MODULE:
            key = key.replace(hub, module)
    return key


def module_key_to_hub(key: str) -> str:
    for hub, module in _HUB_TO_MODULE:
        key = key.replace(module, hub)
    return key


def to_hub_names(state: dict) -> dict:
    """Any spelling (hub or transformers-5 module names) -> hub names."""
    return {module_key_to_hub(k): v for k, v in state.items()}
