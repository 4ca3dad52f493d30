"""Tiny random-initialised configurations of the real architectures, and checkpoints written in the
formats the backends load (Hugging Face folder and Jasmine folder through transformers' / diffusers' own
writers, the released Depth-Anything .pth from its fixture, training safetensors + card). Shared by
tests/test_models_*.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
KITTI_IMAGE = SHARED_DATA / "kitti_000008" / "image.png"

# ---------------------------------------------------------------------------------- Depth Anything

TINY_DA = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, image_size=56,
               neck_hidden_sizes=[8, 16, 32, 64], fusion_hidden_size=16, head_hidden_size=8)
TINY_DA_CARD = {"card_version": 1, "architecture": "depth_anything", "variant": "vits", "short_side": 56,
                "multiple_of": 14, "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                "output_kind": "affine_disparity", "training_data": "none (random test weights)",
                "source": "tests/helpers_models.py", "options": {"num_attention_heads": 2}}


def randomize(module, seed: int = 0, std: float = 0.1):
    """Fill every parameter with seeded noise: default inits zero many biases, which hides key mix-ups."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def tiny_depth_anything(seed: int = 0):
    from depth_prior_ros.models.depth_anything import DepthAnythingNet, depth_anything_config

    model = DepthAnythingNet.from_config(depth_anything_config("vits", **TINY_DA)).model
    return randomize(model, seed).eval()


def write_card(path: Path, card: dict) -> Path:
    path.write_text(json.dumps(card, indent=2))
    return path


def write_hf_folder(model, folder: Path, card: dict | None = TINY_DA_CARD) -> Path:
    model.save_pretrained(str(folder))
    if card is not None:
        write_card(folder / "card.json", card)
    return folder


V2S_CARD = {"card_version": 1, "architecture": "depth_anything", "variant": "vits", "short_side": 56,
            "multiple_of": 14, "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "output_kind": "affine_disparity", "training_data": "none (random test weights)",
            "source": "tests/fixtures/releases/depth_anything_v2_vits.pth.txt", "options": {"version": 2}}


def write_release_pth(path: Path, card: dict | None = V2S_CARD, values: bool = True) -> Path:
    """A Depth Anything V2 ViT-S checkpoint in the release layout, built from its fixture alone (seeded values,
    or stride-0 zeros when only keys and shapes matter), with ``card`` beside it."""
    import helpers_releases as hr

    fixture = hr.read_fixture("depth_anything_v2_vits.pth")
    hr.write_pth(hr.release_state(fixture) if values else hr.shapes_only(fixture), path)
    if card is not None:
        write_card(path.with_suffix(".card.json"), card)
    return path


# --------------------------------------------------------------------------------------- Jasmine

TINY_UNET = dict(sample_size=8, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=[16, 32],
                 attention_head_dim=[2, 4], cross_attention_dim=16, use_linear_projection=True, norm_num_groups=8,
                 down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                 up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                 class_embed_type="projection", projection_class_embeddings_input_dim=4)
# Four blocks: the VAE downsamples 8x like SD's, which the GRU's context upsampling assumes.
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                block_out_channels=[8, 8, 16, 16], norm_num_groups=4, sample_size=64,
                down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
TINY_TAESD = dict(in_channels=3, out_channels=3, latent_channels=4, encoder_block_out_channels=[8, 8, 8, 8],
                  decoder_block_out_channels=[8, 8, 8, 8], num_encoder_blocks=[1, 1, 1, 1],
                  num_decoder_blocks=[1, 1, 1, 1])
TINY_GRU_HIDDEN = 16
TINY_JASMINE_SIZE = [32, 64]
TINY_JASMINE_CARD = {"card_version": 1, "architecture": "jasmine", "variant": "tiny-test", "input_size": TINY_JASMINE_SIZE,
                     "multiple_of": 16, "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
                     "output_kind": "scale_depth", "training_data": "none (random test weights)",
                     "source": "tests/helpers_models.py", "options": {"link_mode": "first"}}


def tiny_jasmine_parts(seed: int = 0):
    """(unet, vae, gru, text embedding) with seeded random weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from depth_prior_ros.models.scale_shift_gru import ScaleShiftGRU

    torch.manual_seed(seed)
    unet = randomize(UNet2DConditionModel.from_config(TINY_UNET), seed, std=0.05).eval()
    vae = randomize(AutoencoderKL.from_config(TINY_VAE), seed + 1, std=0.05).eval()
    gru = randomize(ScaleShiftGRU(hidden=TINY_GRU_HIDDEN), seed + 2, std=0.1).eval()
    text = torch.randn(1, 2, TINY_UNET["cross_attention_dim"], generator=torch.Generator().manual_seed(seed + 3))
    return unet, vae, gru, text


def write_jasmine_folder(folder: Path, seed: int = 0, card: dict | None = TINY_JASMINE_CARD,
                         with_tiny_vae: bool = False) -> Path:
    """The released layout: unet/, vae/ (diffusers), gru.pth (GRUFrameWork state dict incl. its vae.* copy,
    saved through DataParallel so keys carry 'module.'), plus empty_text_embed.safetensors and card.json."""
    import torch
    from safetensors.torch import save_file

    unet, vae, gru, text = tiny_jasmine_parts(seed)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(str(folder / "unet"))
    vae.save_pretrained(str(folder / "vae"))
    state = {f"module.{k}": v for k, v in gru.state_dict().items()}
    state.update({f"module.vae.{k}": v for k, v in vae.state_dict().items()})
    torch.save(state, str(folder / "gru.pth"))
    save_file({"empty_text_embed": text.contiguous()}, str(folder / "empty_text_embed.safetensors"))
    if with_tiny_vae:
        from diffusers import AutoencoderTiny

        tiny = randomize(AutoencoderTiny(**TINY_TAESD), seed + 4, std=0.05).eval()
        tiny.save_pretrained(str(folder / "vae_tiny"))
    if card is not None:
        write_card(folder / "card.json", card)
    return folder


# ----------------------------------------------------------------------------------------- images

def real_image(max_width: int = 160):
    """KITTI 000008 (RGB uint8), shrunk to ``max_width`` keeping the aspect; None when data is absent."""
    if not KITTI_IMAGE.is_file():
        return None
    import cv2

    bgr = cv2.imread(str(KITTI_IMAGE), cv2.IMREAD_COLOR)
    h, w = bgr.shape[:2]
    size = (max_width, max(2, round(h * max_width / w)))
    return cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
