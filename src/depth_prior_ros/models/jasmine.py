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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from torch import nn

from .base import BackendError
from .card import ModelCard, default_card, load_card, write_card
from .checkpoints import check_strict, load_strict, read_config, read_folder_weights, read_state_dict, strip_prefix
from .registry import register_backend
from .scale_shift_gru import LINK_MODES, ScaleShiftGRU
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


class JasmineNet(nn.Module):
    """Normalised image (B, 3, H, W) in [-1, 1] -> scale-invariant depth (B, H, W), from the released parts.

    ``schedule``: the DDPM noise schedule (default SD2's); ``timestep``: the one denoising step (default T-1).
    ``text_embedding_source`` and ``layout`` say where the parts came from (for describe()).
    """

    def __init__(self, vae, unet, gru, text_embedding, schedule: dict | None = None, timestep: int | None = None,
                 tiny_decoder=None, source: str = "jasmine"):
        super().__init__()
        check_unet(unet, vae, source)
        self.vae, self.unet, self.gru, self.tiny_decoder = vae, unet, gru, tiny_decoder
        self.schedule = dict(schedule or SD2_SCHEDULER)
        self.alpha_bar, self.prediction_type, self.timestep = alpha_bar_at(self.schedule, timestep)
        self.scaling = float(vae.config.scaling_factor)
        self.latent_channels = int(vae.config.latent_channels)
        self.register_buffer("text_embedding", text_embedding.float().clone(), persistent=False)
        self.uses_class_labels = unet.config.class_embed_type is not None
        self.register_buffer("task_embedding", task_embedding("depth") if self.uses_class_labels else torch.zeros(1, 0),
                             persistent=False)
        self.text_embedding_source, self.layout = "zeros", "random_init"

    @property
    def size_multiple(self) -> int:
        """Input sides must divide by VAE downsampling x UNet downsampling (64 for SD2)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1) * 2 ** (len(self.unet.config.block_out_channels) - 1)

    @classmethod
    def from_config(cls, config: dict | None = None, gru: bool = True, link_mode: str = "first",
                    text_embedding: str = "", timestep: int | None = None) -> "JasmineNet":
        """Random weights of the published SD2 sizes, or of ``config`` = {"unet": {...}, "vae": {...},
        "gru_hidden": 64}; ``text_embedding``: a file with the empty-prompt embedding (else zeros)."""
        config = config or {}
        unet = UNet2DConditionModel.from_config(config.get("unet", sd2_unet_config())).eval()
        vae = AutoencoderKL.from_config(config.get("vae", sd2_vae_config())).eval()
        hidden = int(config.get("gru_hidden", 64))
        gru_module = ScaleShiftGRU(hidden=hidden, link_mode=link_mode).eval() if gru else None
        emb, emb_source = load_text_embedding(None, text_embedding or None, int(unet.config.cross_attention_dim))
        net = cls(vae, unet, gru_module, emb, timestep=timestep)
        net.text_embedding_source = emb_source
        return net

    @classmethod
    def from_pretrained(cls, folder: str | Path, gru: bool = True, link_mode: str = "first", text_embedding: str = "",
                        timestep: int | None = None) -> "JasmineNet":
        """The released folder (unet/, vae/, gru.pth, optionally scheduler/ and the empty-prompt embedding),
        every part loaded strictly; a bad file is one BackendError sentence naming it."""
        folder = Path(folder)
        if not folder.is_dir():
            raise BackendError(f"jasmine weights {folder} must be a folder with unet/, vae/ and gru.pth")
        vae = load_diffusers_folder(AutoencoderKL, folder / "vae", "Stable Diffusion VAE")
        unet = load_diffusers_folder(UNet2DConditionModel, folder / "unet", "Jasmine UNet")
        gru_module = None
        if gru:
            gru_path = next((folder / n for n in ("gru.pth", "gru.safetensors") if (folder / n).is_file()), None)
            if gru_path is None:
                raise BackendError(f"{folder} has no gru.pth (set gru=false to run without the Scale-Shift GRU)")
            gru_module = load_gru(gru_path, link_mode, vae)
        emb, emb_source = load_text_embedding(folder, text_embedding or None, int(unet.config.cross_attention_dim))
        net = cls(vae, unet, gru_module, emb, scheduler_config(folder), timestep, source=str(folder))
        net.text_embedding_source, net.layout = emb_source, "jasmine_release"
        return net

    def save_pretrained(self, folder: str | Path, card: ModelCard | None = None) -> Path:
        """Write the released layout ``from_pretrained`` reads: unet/, vae/ (and vae_tiny/), gru.pth, the
        empty-prompt embedding, scheduler/ and card.json (default: the architecture's card)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.vae.save_pretrained(folder / "vae", safe_serialization=True)
        if self.tiny_decoder is not None:
            self.tiny_decoder.save_pretrained(folder / "vae_tiny", safe_serialization=True)
        if self.gru is not None:
            torch.save({k: v.detach().cpu() for k, v in self.gru.state_dict().items()}, folder / "gru.pth")
        save_empty_text_embedding(self.text_embedding, folder / EMPTY_TEXT_FILE)
        (folder / "scheduler").mkdir(exist_ok=True)
        (folder / "scheduler" / "scheduler_config.json").write_text(
            json.dumps(dict(self.schedule, _class_name="DDPMScheduler")))
        write_card((card or default_card("jasmine")).replace(path=None), folder / "card.json")
        return folder

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
                        encoder_hidden_states=self.text_embedding.expand(batch, -1, -1), return_dict=False, **kwargs)[0]
        decoded = self.decode(x0_from_prediction(out, noisy, self.alpha_bar, self.prediction_type))
        if self.gru is None:
            depth = decoded.mean(dim=1, keepdim=True).clamp(-1.0, 1.0) * 0.5 + 0.5
        else:
            depth = self.gru(latent, decoded)
        return depth[:, 0]


def check_unet(unet, vae, source: str) -> None:
    """The UNet must take image latent + zeros and, if it has a class embedding, Jasmine's 4-d task switcher."""
    if unet.config.in_channels != 2 * vae.config.latent_channels:
        raise BackendError(f"{source}: the UNet takes {unet.config.in_channels} input channels but Jasmine feeds "
                           f"image latent + zeros = {2 * vae.config.latent_channels}")
    if unet.config.class_embed_type not in (None, "projection"):
        raise BackendError(f"{source}: UNet class_embed_type '{unet.config.class_embed_type}' is not Jasmine's task "
                           f"switcher (expected 'projection' or none)")
    if unet.config.class_embed_type == "projection" and unet.config.projection_class_embeddings_input_dim != 4:
        raise BackendError(f"{source}: the UNet's task switcher takes "
                           f"{unet.config.projection_class_embeddings_input_dim} inputs, Jasmine's has 4")
    if unet.config.class_embed_type is None:
        log.info("jasmine: the UNet has no class embedding; running without the task switcher input")


# ------------------------------------------------------------------------------------------ loading

# Weight files of a diffusers folder in the order diffusers prefers them.
DIFFUSERS_WEIGHTS = tuple(f"diffusion_pytorch_model{variant}{suffix}" for suffix in
                          (".safetensors", ".safetensors.index.json", ".bin") for variant in ("", ".fp16"))


def load_diffusers_folder(cls, folder: Path, what: str):
    """Build ``cls`` from ``folder/config.json`` and load its weights strictly (one-sentence errors).

    The module is built on the meta device (the SD2 UNet in 0.1 s instead of 23 s of initial values that
    would be overwritten); diffusers' own machinery renames the attention keys of old checkpoints
    (query/key/value/proj_attn); reading and the strict comparison stay ours, so that a bad file is one
    sentence naming it and its first bad key.
    """
    config, config_file = read_config(folder, f"a diffusers {cls.__name__} folder")
    if config.get("_class_name") not in (None, cls.__name__):
        raise BackendError(f"{config_file} describes a {config.get('_class_name')}, expected {cls.__name__}")
    try:
        with torch.device("meta"):
            model = cls.from_config(config)
    except Exception as exc:  # diffusers raises ValueError/TypeError on inconsistent configs
        raise BackendError(f"{config_file} is not a valid {cls.__name__} config: "
                           f"{str(exc).splitlines()[0]}") from None
    state, source = read_folder_weights(folder, DIFFUSERS_WEIGHTS)
    model._fix_state_dict_keys_on_load(state)  # diffusers renames old attention keys in place
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    load_strict(model, state, source, what=what)
    return model.eval()


def load_gru(path: Path, link_mode: str, vae=None, heads: int = 4) -> ScaleShiftGRU:
    """Released ``gru.pth`` -> ScaleShiftGRU (hidden size read off ``project.weight``).

    The released GRUFrameWork keeps a reference to the frozen VAE, so its state dict repeats the VAE under
    ``vae.``; that copy must match ``vae`` key for key and shape for shape, and the VAE of ``vae/`` is used.
    """
    state = strip_prefix(read_state_dict(path), "module.")
    vae_copy = {k[4:]: v for k, v in state.items() if k.startswith("vae.")}
    if vae_copy and vae is not None:
        vae._fix_state_dict_keys_on_load(vae_copy)
        check_strict(vae.state_dict(), vae_copy, path, lambda k: f"vae.{k}", what="copy of the VAE")
    state = {k: v for k, v in state.items() if not k.startswith("vae.")}
    if "project.weight" not in state:
        raise BackendError(f"{path} is missing key 'project.weight' that the Scale-Shift GRU needs")
    hidden = int(state["project.weight"].shape[0])
    gru = ScaleShiftGRU(hidden=hidden, heads=heads, link_mode=link_mode,
                        decoded_channels=int(state["project.weight"].shape[1]))
    load_strict(gru, state, path, what="Scale-Shift GRU")
    return gru.eval()


def scheduler_config(folder: Path | None) -> dict:
    """The noise schedule of ``folder/scheduler`` (the keys that define it) over SD2's defaults."""
    config = dict(SD2_SCHEDULER)
    sched_file = folder / "scheduler" / "scheduler_config.json" if folder else None
    if sched_file is not None and sched_file.is_file():
        loaded = json.loads(sched_file.read_text())
        config.update({k: loaded[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                                              "prediction_type", "trained_betas") if k in loaded})
    return config


def alpha_bar_at(schedule: dict | None, timestep: int | None) -> tuple[float, str, int]:
    """(alpha_bar[t], prediction_type, t) of a DDPM ``schedule`` (None: SD2's); t defaults to T-1."""
    from diffusers import DDPMScheduler

    config = schedule or SD2_SCHEDULER
    t = int(config["num_train_timesteps"] - 1 if timestep is None else timestep)
    if not 0 <= t < config["num_train_timesteps"]:
        raise BackendError(f"timestep {t} is outside the schedule's 0..{config['num_train_timesteps'] - 1}")
    return float(DDPMScheduler(**config).alphas_cumprod[t]), str(config["prediction_type"]), t


def empty_text_embedding_from_encoder(text_encoder_dir: Path, tokenizer_dir: Path | None = None):
    """The empty prompt through a local CLIP text encoder: ids [BOS, EOS], last hidden state (1, 2, C)."""
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


class JasmineBackend(TorchDepthBackend):
    name = "jasmine"


@dataclass
class JasmineOptions:
    """Options of ``create_backend("jasmine", ...)`` (the node's ``backend_options``).

    weights: the released folder (unet/, vae/, gru.pth); random_init builds the published SD2 sizes (or
    ``config``, see JasmineNet.from_config) with random weights, for benchmarks. tiny_vae: True ->
    ``weights/vae_tiny``; a path -> that AutoencoderTiny folder (decoder only). attention_slicing: False |
    True/"auto" | "max" | int (UNet attention in slices: less memory, slower). gru: False skips the Scale-Shift
    GRU (channel mean in [0, 1]). link_mode: first | mean (default: the card's). text_embedding: a file with
    the empty-prompt embedding. timestep: the denoising step (default T-1). card: a card path ("" = the one
    in the folder).
    """

    weights: str = ""
    card: str = ""
    device: str = "auto"
    dtype: str = "fp32"
    input_size: list[int] | None = None
    tiny_vae: bool | str = False
    attention_slicing: bool | str | int = False
    gru: bool = True
    link_mode: str = ""
    text_embedding: str = ""
    timestep: int | None = None
    random_init: bool = False
    config: dict | None = None
    compile: str | bool = ""


@register_backend("jasmine", JasmineOptions)
def create_jasmine(options: JasmineOptions) -> JasmineBackend:
    """Factory behind ``create_backend("jasmine", ...)``."""
    o = options
    card = load_card(o.weights, "jasmine", card_path=o.card) if o.weights or o.card else default_card("jasmine")
    link = o.link_mode or str(card.options.get("link_mode", "first"))
    if link not in LINK_MODES:
        raise BackendError(f"link_mode must be 'first' or 'mean', got '{link}'")
    timestep = None if o.timestep is None else int(o.timestep)
    if o.weights:
        net = JasmineNet.from_pretrained(o.weights, o.gru, link, o.text_embedding, timestep)
    elif o.random_init:
        net = JasmineNet.from_config(o.config, o.gru, link, o.text_embedding, timestep)
        log.warning("jasmine: random initialisation (no weights) - for tests and benchmarks only")
    else:
        raise BackendError("jasmine needs weights (a folder with unet/, vae/ and gru.pth); set random_init "
                           "only for tests and benchmarks")
    info: dict[str, Any] = {"layout": net.layout}
    if o.tiny_vae:
        if o.tiny_vae is True and not o.weights:
            raise BackendError("tiny_vae=true needs a weights folder with vae_tiny/ (or give its path)")
        tiny_dir = Path(o.weights) / "vae_tiny" if o.tiny_vae is True else Path(str(o.tiny_vae))
        net.tiny_decoder = load_diffusers_folder(AutoencoderTiny, tiny_dir, "tiny VAE (AutoencoderTiny)")
        info["decoder"] = f"AutoencoderTiny ({tiny_dir})"
    if o.attention_slicing:
        net.unet.set_attention_slice("auto" if o.attention_slicing is True else o.attention_slicing)
        info["attention_slicing"] = str(o.attention_slicing)
    info.update(text_embedding=net.text_embedding_source, timestep=net.timestep, prediction_type=net.prediction_type,
                alpha_bar=net.alpha_bar, gru="on" if net.gru is not None else "off", link_mode=link)
    if o.input_size is not None:
        card = card.replace(input_size=(int(o.input_size[0]), int(o.input_size[1])))
    multiple = net.size_multiple
    if card.input_size is not None and (card.input_size[0] % multiple or card.input_size[1] % multiple):
        raise BackendError(f"jasmine input size {card.input_size[0]}x{card.input_size[1]} (h x w) must be a multiple "
                           f"of {multiple} on both sides")
    card = card.replace(multiple_of=max(card.multiple_of, multiple))
    return JasmineBackend(net, card, weights=o.weights, device=o.device, dtype=o.dtype, compile=o.compile,
                          extra_info=info)
