"""``jasmine``: self-supervised depth from Stable Diffusion 2 in one denoising step + the Scale-Shift GRU.

Forward pass (image in [-1, 1], size a multiple of 64, default 320x1024 from the card):

1. image latent ``z = mean(VAE.encode(x)) * scaling_factor``  (B, 4, H/8, W/8)
2. ``v = UNet(cat[z, zeros], t=999, empty-prompt embedding, class_labels=task switcher "depth")``
3. x0 from the scheduler's ``alpha_bar[t]``: v-prediction ``x0 = sqrt(ab) x_t - sqrt(1-ab) v`` with
   ``x_t = 0``, i.e. ``x0 = -sqrt(1 - ab) v``
4. ``VAE.decode(x0 / scaling_factor)`` -> 3-channel image (or the tiny TAESD decoder on x0 itself)
5. Scale-Shift GRU(z, decoded) -> scale-invariant depth in [0, 3]   (without GRU: channel mean -> [0, 1])

Released layout it loads (a folder): ``unet/`` and ``vae/`` (diffusers: config.json +
diffusion_pytorch_model.safetensors), ``gru.pth`` (a state dict, read weights-only; its ``vae.*`` copy of
the frozen VAE is ignored), optionally ``scheduler/`` (else the SD2 schedule), ``vae_tiny/``
(AutoencoderTiny), ``empty_text_embed.safetensors`` (the empty-prompt CLIP embedding, so no text
encoder runs on the vehicle; or ``text_encoder/`` + ``tokenizer/`` to compute it once at load).
"""
from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from .base import BackendError
from .card import default_card, load_card
from .checkpoints import load_strict, read_state_dict, safe_torch_load, strip_prefix
from .registry import register_backend
from .torch_backend import TorchDepthBackend

log = logging.getLogger(__name__)

EMPTY_TEXT_FILE = "empty_text_embed.safetensors"
EMPTY_TEXT_KEY = "empty_text_embed"
# The CLIP BPE vocabulary's start/end-of-text ids (the same in every CLIP tokenizer).
CLIP_BOS_ID, CLIP_EOS_ID = 49406, 49407

# Stable Diffusion 2 (768-v) noise schedule: what DDPMScheduler.from_pretrained(sd2/scheduler) gives.
SD2_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                 "beta_schedule": "scaled_linear", "prediction_type": "v_prediction"}


def sd2_unet_config(in_channels: int = 8, task_switcher: bool = True) -> dict[str, Any]:
    """Published SD2 UNet sizes with Jasmine's 8-channel conv_in (+ the projection class embedding)."""
    cfg = {"sample_size": 96, "in_channels": in_channels, "out_channels": 4, "layers_per_block": 2,
           "block_out_channels": [320, 640, 1280, 1280], "attention_head_dim": [5, 10, 20, 20],
           "cross_attention_dim": 1024, "use_linear_projection": True, "norm_num_groups": 32,
           "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                "DownBlock2D"],
           "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
    if task_switcher:
        cfg.update(class_embed_type="projection", projection_class_embeddings_input_dim=4)
    return cfg


def sd2_vae_config() -> dict[str, Any]:
    return {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
            "block_out_channels": [128, 256, 512, 512], "norm_num_groups": 32, "sample_size": 768,
            "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
            "scaling_factor": 0.18215}


def task_embedding(task: str = "depth"):
    """Jasmine's task switcher: one-hot (depth = [0, 1], image = [1, 0]) -> [sin, cos] -> (1, 4)."""
    import torch

    one_hot = torch.tensor([[0.0, 1.0]] if task == "depth" else [[1.0, 0.0]])
    return torch.cat([torch.sin(one_hot), torch.cos(one_hot)], dim=-1)


def x0_from_prediction(prediction, x_t, alpha_bar: float, prediction_type: str):
    """Clean latent from one model output at a timestep with cumulative alpha ``alpha_bar``.

    v: x0 = sqrt(ab) x_t - sqrt(1-ab) v;  epsilon: x0 = (x_t - sqrt(1-ab) eps) / sqrt(ab);  sample: x0.
    """
    a, s = math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)
    if prediction_type == "v_prediction":
        return a * x_t - s * prediction
    if prediction_type == "epsilon":
        return (x_t - s * prediction) / a
    if prediction_type == "sample":
        return prediction
    raise BackendError(f"unsupported scheduler prediction_type '{prediction_type}'")


def _net_module():
    import torch
    from torch import nn

    class JasmineNet(nn.Module):
        """Normalised image (B, 3, H, W) in [-1, 1] -> scale-invariant depth (B, H, W)."""

        def __init__(self, vae, unet, gru, text_embedding, alpha_bar: float, prediction_type: str,
                     timestep: int, tiny_decoder=None):
            super().__init__()
            self.vae, self.unet, self.gru, self.tiny_decoder = vae, unet, gru, tiny_decoder
            self.alpha_bar, self.prediction_type, self.timestep = float(alpha_bar), prediction_type, int(timestep)
            self.scaling = float(vae.config.scaling_factor)
            self.latent_channels = int(vae.config.latent_channels)
            self.register_buffer("text_embedding", text_embedding.float().clone(), persistent=False)
            uses_class = unet.config.class_embed_type is not None
            self.register_buffer("task_embedding", task_embedding("depth") if uses_class else torch.zeros(1, 0),
                                 persistent=False)
            self.uses_class_labels = uses_class

        def encode(self, pixels):
            """Mean of the VAE posterior, scaled (the released pipeline's encode_rgb)."""
            h = self.vae.encoder(pixels)
            if self.vae.quant_conv is not None:
                h = self.vae.quant_conv(h)
            return h[:, : self.latent_channels] * self.scaling

        def decode(self, latent):
            if self.tiny_decoder is not None:  # TAESD works on scaled latents, outputs [-1, 1]
                return self.tiny_decoder.decoder(latent)
            z = latent / self.scaling
            if self.vae.post_quant_conv is not None:
                z = self.vae.post_quant_conv(z)
            return self.vae.decoder(z)

        def forward(self, pixels):
            batch = pixels.shape[0]
            latent = self.encode(pixels)
            noisy = torch.zeros_like(latent)  # Jasmine starts from zeros, not noise
            kwargs = {"class_labels": self.task_embedding.expand(batch, -1)} if self.uses_class_labels else {}
            out = self.unet(torch.cat([latent, noisy], dim=1), self.timestep,
                            encoder_hidden_states=self.text_embedding.expand(batch, -1, -1),
                            return_dict=False, **kwargs)[0]
            clean = x0_from_prediction(out, noisy, self.alpha_bar, self.prediction_type)
            decoded = self.decode(clean)
            if self.gru is None:
                depth = decoded.mean(dim=1, keepdim=True).clamp(-1.0, 1.0) * 0.5 + 0.5
            else:
                depth = self.gru(latent, decoded)
            return depth[:, 0]

    return JasmineNet


# ------------------------------------------------------------------------------------------ loading

_LEGACY_ATTENTION = re.compile(r"(?P<path>.*attentions\.\d+)\.(?P<old>query|key|value|proj_attn)\.(?P<p>weight|bias)\Z")
_LEGACY_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _modernise_keys(state: dict) -> dict:
    """Old diffusers attention-block names (query/key/value/proj_attn) -> to_q/to_k/to_v/to_out.0."""
    out = {}
    for key, value in state.items():
        m = _LEGACY_ATTENTION.match(key)
        out[f"{m['path']}.{_LEGACY_NAMES[m['old']]}.{m['p']}" if m else key] = value
    return out


def _weights_file(folder: Path) -> list[Path]:
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"):
        if (folder / name).is_file():
            return [folder / name]
    for name in ("diffusion_pytorch_model.safetensors.index.json",
                 "diffusion_pytorch_model.fp16.safetensors.index.json"):
        index = folder / name
        if index.is_file():
            return [folder / s for s in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    for name in ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"):
        if (folder / name).is_file():
            return [folder / name]
    raise BackendError(f"{folder} has no diffusion_pytorch_model.safetensors")


def load_diffusers_folder(cls, folder: Path, what: str):
    """Build ``cls`` from ``folder/config.json`` and load its weights strictly (one-sentence errors)."""
    import torch

    config_file = folder / "config.json"
    if not config_file.is_file():
        raise BackendError(f"{folder} is missing config.json (expected a diffusers {cls.__name__} folder)")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise BackendError(f"{config_file} is not valid JSON: {exc}") from None
    if config.get("_class_name") not in (None, cls.__name__):
        raise BackendError(f"{config_file} describes a {config.get('_class_name')}, expected {cls.__name__}")
    try:
        model = cls.from_config(config)
    except Exception as exc:  # diffusers raises ValueError/TypeError on inconsistent configs
        raise BackendError(f"{config_file} is not a valid {cls.__name__} config: "
                           f"{str(exc).splitlines()[0]}") from None
    files = _weights_file(folder)
    state: dict = {}
    for f in files:
        state.update(read_state_dict(f))
    state = _modernise_keys(state)
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    load_strict(model, state, files[0] if len(files) == 1 else folder, what=what)
    return model.eval()


def load_gru(path: Path, link_mode: str, heads: int = 4):
    """Released ``gru.pth`` -> ScaleShiftGRU (hidden size read off ``project.weight``)."""
    from .scale_shift_gru import ScaleShiftGRU

    state = read_state_dict(path) if path.suffix == ".safetensors" else _pickle_state(path)
    state = strip_prefix(state, "module.")
    # The released GRUFrameWork keeps a reference to the frozen VAE, so its state dict repeats it.
    state = {k: v for k, v in state.items() if not k.startswith("vae.")}
    if "project.weight" not in state:
        raise BackendError(f"{path} is missing key 'project.weight' that the Scale-Shift GRU needs")
    hidden = int(state["project.weight"].shape[0])
    gru = ScaleShiftGRU(hidden=hidden, heads=heads, link_mode=link_mode,
                        decoded_channels=int(state["project.weight"].shape[1]))
    load_strict(gru, state, path, what="Scale-Shift GRU")
    return gru.eval()


def _pickle_state(path: Path) -> dict:
    import torch

    obj = safe_torch_load(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise BackendError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def alpha_bar_at(folder: Path | None, timestep: int | None) -> tuple[float, str, int]:
    """(alpha_bar[t], prediction_type, t) from ``folder/scheduler`` or the SD2 schedule; t defaults to T-1."""
    from diffusers import DDPMScheduler

    config = dict(SD2_SCHEDULER)
    sched_file = folder / "scheduler" / "scheduler_config.json" if folder else None
    if sched_file is not None and sched_file.is_file():
        loaded = json.loads(sched_file.read_text())
        config.update({k: loaded[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                                              "prediction_type", "trained_betas") if k in loaded})
    scheduler = DDPMScheduler(**config)
    t = int(config["num_train_timesteps"] - 1 if timestep is None else timestep)
    if not 0 <= t < config["num_train_timesteps"]:
        raise BackendError(f"timestep {t} is outside the schedule's 0..{config['num_train_timesteps'] - 1}")
    return float(scheduler.alphas_cumprod[t]), str(config["prediction_type"]), t


def empty_text_embedding_from_encoder(text_encoder_dir: Path, tokenizer_dir: Path | None = None):
    """The empty prompt through a local CLIP text encoder: ids [BOS, EOS], last hidden state (1, 2, C)."""
    import torch
    from transformers import CLIPTextModel

    bos, eos = CLIP_BOS_ID, CLIP_EOS_ID
    vocab = (tokenizer_dir / "vocab.json") if tokenizer_dir else None
    if vocab is not None and vocab.is_file():
        ids = json.loads(vocab.read_text())
        bos, eos = ids.get("<|startoftext|>", bos), ids.get("<|endoftext|>", eos)
    model = CLIPTextModel.from_pretrained(str(text_encoder_dir), local_files_only=True, use_safetensors=True).eval()
    with torch.inference_mode():
        return model(torch.tensor([[bos, eos]])).last_hidden_state.float()


def save_empty_text_embedding(embedding, path: str | Path) -> Path:
    from safetensors.torch import save_file

    p = Path(path)
    save_file({EMPTY_TEXT_KEY: embedding.detach().float().contiguous().cpu()}, str(p))
    return p


def load_text_embedding(folder: Path | None, explicit: str | None, cross_attention_dim: int):
    """(embedding (1, T, C), where it came from). Order: option, folder file, folder text encoder, zeros."""
    import torch

    candidates = [Path(explicit)] if explicit else []
    if folder is not None:
        candidates.append(folder / EMPTY_TEXT_FILE)
    for c in candidates:
        if c.is_file():
            tensors = read_state_dict(c)
            emb = tensors.get(EMPTY_TEXT_KEY, next(iter(tensors.values())))
            if emb.dim() == 2:
                emb = emb.unsqueeze(0)
            if emb.dim() != 3 or emb.shape[0] != 1 or emb.shape[-1] != cross_attention_dim:
                raise BackendError(f"{c}: key '{EMPTY_TEXT_KEY}' has shape {tuple(emb.shape)} but the UNet expects "
                                   f"(1, tokens, {cross_attention_dim})")
            return emb.float(), str(c)
        if explicit and c == Path(explicit):
            raise BackendError(f"text embedding file {c} does not exist")
    if folder is not None and (folder / "text_encoder" / "config.json").is_file():
        emb = empty_text_embedding_from_encoder(folder / "text_encoder", folder / "tokenizer")
        if emb.shape[-1] != cross_attention_dim:
            raise BackendError(f"{folder / 'text_encoder'} gives {emb.shape[-1]}-d embeddings but the UNet "
                               f"expects {cross_attention_dim}")
        return emb, str(folder / "text_encoder")
    log.warning("jasmine: no %s or text_encoder/ found: using a zero prompt embedding (write one with "
                "`depth-prior weights text-embedding`)", EMPTY_TEXT_FILE)
    return torch.zeros(1, 2, cross_attention_dim), "zeros"


def _size_multiple(vae, unet) -> int:
    """Input sides must divide by VAE downsampling x UNet downsampling (64 for SD2)."""
    vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
    unet_factor = 2 ** (len(unet.config.block_out_channels) - 1)
    return vae_factor * unet_factor


class JasmineBackend(TorchDepthBackend):
    name = "jasmine"


_OPTIONS = ("weights", "device", "dtype", "input_size", "tiny_vae", "attention_slicing", "gru", "link_mode",
            "text_embedding", "timestep", "random_init", "config", "compile")


def create_jasmine(weights: str = "", device: str = "auto", dtype: str = "fp32",
                   input_size: list[int] | None = None, tiny_vae: bool | str = False,
                   attention_slicing: bool | str | int = False, gru: bool = True, link_mode: str = "",
                   text_embedding: str = "", timestep: int | None = None, random_init: bool = False,
                   config: dict | None = None, compile: str | bool = "", **unknown) -> JasmineBackend:
    """Factory behind ``create_backend("jasmine", ...)``.

    weights: the released folder (unet/, vae/, gru.pth). random_init=True builds the published SD2 sizes
    (or ``config`` = {"unet": {...}, "vae": {...}, "gru_hidden": 64}) with random weights, for benchmarks.
    tiny_vae: True -> ``weights/vae_tiny``; a path -> that AutoencoderTiny folder (decoder only).
    attention_slicing: False | True/"auto" | "max" | int (UNet attention in slices: less memory, slower).
    gru: False skips the Scale-Shift GRU (channel mean in [0, 1]). link_mode: first | mean (card default).
    """
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    from .scale_shift_gru import ScaleShiftGRU

    if unknown:
        raise BackendError(f"jasmine does not know option(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(_OPTIONS)}")
    folder = Path(weights) if weights else None
    card = load_card(weights, "jasmine") if weights else default_card("jasmine")
    link = link_mode or str(card.options.get("link_mode", "first"))
    if link not in ("first", "mean"):
        raise BackendError(f"link_mode must be 'first' or 'mean', got '{link}'")
    info: dict[str, Any] = {}
    if folder is not None:
        if not folder.is_dir():
            raise BackendError(f"jasmine weights {folder} must be a folder with unet/, vae/ and gru.pth")
        vae = load_diffusers_folder(AutoencoderKL, folder / "vae", "Stable Diffusion VAE")
        unet = load_diffusers_folder(UNet2DConditionModel, folder / "unet", "Jasmine UNet")
        gru_module = None
        if gru:
            gru_path = next((folder / n for n in ("gru.pth", "gru.safetensors") if (folder / n).is_file()), None)
            if gru_path is None:
                raise BackendError(f"{folder} has no gru.pth (set gru=false to run without the Scale-Shift GRU)")
            gru_module = load_gru(gru_path, link)
        info["layout"] = "jasmine_release"
    elif random_init:
        cfg = config or {}
        unet = UNet2DConditionModel.from_config(cfg.get("unet", sd2_unet_config())).eval()
        vae = AutoencoderKL.from_config(cfg.get("vae", sd2_vae_config())).eval()
        gru_module = ScaleShiftGRU(hidden=int(cfg.get("gru_hidden", 64)), link_mode=link).eval() if gru else None
        info["layout"] = "random_init"
        log.warning("jasmine: random initialisation (no weights) - for tests and benchmarks only")
    else:
        raise BackendError("jasmine needs weights (a folder with unet/, vae/ and gru.pth); set random_init "
                           "only for tests and benchmarks")
    if unet.config.in_channels != 2 * vae.config.latent_channels:
        raise BackendError(f"{folder or 'jasmine'}: the UNet takes {unet.config.in_channels} input channels but "
                           f"Jasmine feeds image latent + zeros = {2 * vae.config.latent_channels}")
    if unet.config.class_embed_type not in (None, "projection"):
        raise BackendError(f"{folder or 'jasmine'}: UNet class_embed_type '{unet.config.class_embed_type}' is not "
                           f"Jasmine's task switcher (expected 'projection' or none)")
    if unet.config.class_embed_type == "projection" and unet.config.projection_class_embeddings_input_dim != 4:
        raise BackendError(f"{folder or 'jasmine'}: the UNet's task switcher takes "
                           f"{unet.config.projection_class_embeddings_input_dim} inputs, Jasmine's has 4")
    if unet.config.class_embed_type is None:
        log.info("jasmine: the UNet has no class embedding; running without the task switcher input")

    tiny = None
    if tiny_vae:
        tiny_dir = (folder / "vae_tiny") if tiny_vae is True and folder else Path(str(tiny_vae))
        if tiny_vae is True and folder is None:
            raise BackendError("tiny_vae=true needs a weights folder with vae_tiny/ (or give its path)")
        tiny = load_diffusers_folder(AutoencoderTiny, tiny_dir, "tiny VAE (AutoencoderTiny)")
        info["decoder"] = f"AutoencoderTiny ({tiny_dir})"
    if attention_slicing:
        unet.set_attention_slice("auto" if attention_slicing is True else attention_slicing)
        info["attention_slicing"] = str(attention_slicing)

    emb, emb_source = load_text_embedding(folder, text_embedding or None, int(unet.config.cross_attention_dim))
    alpha_bar, prediction_type, t = alpha_bar_at(folder, timestep if timestep is None else int(timestep))
    info.update(text_embedding=emb_source, timestep=t, prediction_type=prediction_type, alpha_bar=alpha_bar,
                gru="on" if gru_module is not None else "off", link_mode=link)

    multiple = _size_multiple(vae, unet)
    if input_size is not None:
        card = card.replace(input_size=(int(input_size[0]), int(input_size[1])))
    if card.input_size is not None and (card.input_size[0] % multiple or card.input_size[1] % multiple):
        raise BackendError(f"jasmine input size {card.input_size[0]}x{card.input_size[1]} (h x w) must be a multiple "
                           f"of {multiple} on both sides")
    card = card.replace(multiple_of=max(card.multiple_of, multiple))
    net = _net_module()(vae, unet, gru_module, emb, alpha_bar, prediction_type, t, tiny)
    return JasmineBackend(net, card, weights=weights, device=device, dtype=dtype, compile=compile,
                          extra_info=info)


register_backend("jasmine")(create_jasmine)
