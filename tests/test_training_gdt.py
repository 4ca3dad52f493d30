"""GDT: a tiny random SD + ControlNet img2img pipeline (real diffusers modules) and the classical translator."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

from depth_prior_training import gdt  # noqa: E402


@dataclass
class _Frame:
    name: str
    image: np.ndarray
    depth: np.ndarray
    labels: np.ndarray | None = None


def _frames(n=3, h=32, w=48):
    rng = np.random.default_rng(0)
    rows = np.linspace(4.0, 40.0, h)[::-1, None] * np.ones((1, w))
    return [_Frame(f"f{i}", rng.integers(0, 255, (h, w, 3), dtype=np.uint8), rows.astype(np.float32)) for i in range(n)]


def _tiny_tokenizer(tmp_path: Path):
    """A CLIPTokenizer from a byte-level vocab written here (no download): every byte char and its '</w>' form."""
    from transformers import CLIPTokenizer

    # GPT-2/CLIP byte-level alphabet: printable bytes map to themselves, the rest to chr(256 + k).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    extra = [b for b in range(256) if b not in printable]
    chars = [chr(b) for b in printable] + [chr(256 + k) for k in range(len(extra))]
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["at"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\na t\n")
    return CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=16), len(vocab)


def _tiny_pipeline(tmp_path: Path):
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionControlNetImg2ImgPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=2)
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8))
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    tokenizer, vocab_size = _tiny_tokenizer(tmp_path)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=16, projection_dim=16,
                                        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1))
    pipe = StableDiffusionControlNetImg2ImgPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                                    controlnet=controlnet, scheduler=DDIMScheduler(),
                                                    safety_checker=None, feature_extractor=None,
                                                    requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_prompts_follow_ssd():
    assert gdt.prompt_for("night", "a car on a road.") == "a car on a road, at night"
    assert gdt.prompt_for("rain", "") == "a street in a rainy day"
    with pytest.raises(ValueError, match="no prompt"):
        gdt.prompt_for("snow")


def test_depth_control_image_is_bright_near():
    depth = np.array([[2.0, 10.0], [50.0, np.nan]], np.float32)
    ctrl = gdt.depth_control_image(depth)
    assert ctrl.shape == (2, 2, 3) and ctrl.dtype == np.uint8
    assert ctrl[0, 0, 0] > ctrl[0, 1, 0] > ctrl[1, 0, 0] >= ctrl[1, 1, 0] == 0


def test_tiny_diffusion_gdt_writes_resumable_manifest(tmp_path):
    pipe = _tiny_pipeline(tmp_path)
    translator = gdt.DiffusionTranslator(pipe, steps=2, strength=0.5, guidance_scale=2.0,
                                         caption=lambda image: "a road with cars", size=(32, 48))
    frames = _frames(2)
    out = tmp_path / "gdt"
    manifest = gdt.translate_dataset(frames, translator, ["night", "rain"], out, progress=False)
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert {(e["source"], e["condition"]) for e in entries} == {(f.name, c) for f in frames for c in ("night", "rain")}
    assert entries[0]["prompt"] == "a road with cars, at night"
    import cv2

    img = cv2.imread(str(out / entries[0]["output"]))
    assert img.shape == (32, 48, 3)
    # Same entry, same seed: a rerun of the translator reproduces the stored image.
    again = translator(frames[0].image, "night", frames[0].depth, None, entries[0]["seed"])
    assert np.abs(again.astype(int) - cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(int)).max() <= 1
    # Resumable: nothing left to do, the manifest does not grow.
    calls = []
    gdt.translate_dataset(frames, lambda *a: calls.append(a) or a[0], ["night", "rain"], out, progress=False)
    assert calls == [] and len(manifest.read_text().splitlines()) == 4


def test_classical_gdt_shards_and_merges(tmp_path):
    frames = _frames(5)
    translator = gdt.ClassicalTranslator()
    for shard in range(2):
        gdt.translate_dataset(frames, translator, ["night", "rain"], tmp_path, shard=shard, num_shards=2, progress=False)
    merged = gdt.merge_manifests(tmp_path)
    entries = [json.loads(line) for line in merged.read_text().splitlines()]
    assert len(entries) == 10 and len({(e["source"], e["condition"]) for e in entries}) == 10
    import cv2

    night = cv2.imread(str(tmp_path / next(e["output"] for e in entries if e["condition"] == "night")))
    source = frames[0].image
    assert night.mean() < source.mean()  # night is darker than the day frame
    with pytest.raises(ValueError, match="shard"):
        gdt.translate_dataset(frames, translator, ["night"], tmp_path, shard=2, num_shards=2)


def test_translator_command_resumes_when_the_config_names_its_manifest(tmp_path):
    """The student config names the manifest the translator is about to write: the first run must not
    try to read it, and a rerun adds nothing."""
    import yaml

    out = tmp_path / "gdt"
    config = tmp_path / "student.yaml"
    config.write_text(yaml.safe_dump({
        "recipe": "ssd_student", "steps": 1,
        "data": {"source": "synthetic_stream", "sequences": 1, "seed_start": 5, "frames_per_sequence": 5,
                 "size": [48, 96], "motion": {"mode": "none"}, "holdout_every": 0, "cache_dir": str(tmp_path / "cache"),
                 "conditions": ["night", "rain"], "manifest": str(out / "manifest.jsonl")}}))
    assert gdt.main(["--config", str(config), "--out", str(out), "--translator", "classical"]) == 0
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 2 * 2  # 5 frames: the first has no past (4 kept), the kept ends no neighbour -> 2
    assert gdt.main(["--config", str(config), "--out", str(out), "--translator", "classical"]) == 0
    assert (out / "manifest.jsonl").read_text().splitlines() == lines


def test_classical_night_has_no_sun_shadows_and_is_lit_by_lamps_and_headlights():
    """A sunlit road with a hard shadow: at night the shadow edge is gone (no sun), the road is lit
    brightest just ahead of the car (headlights), and the lamps are the brightest pixels."""
    from depth_prior_training.night import night

    h, w = 120, 400
    day = np.full((h, w, 3), 200, np.uint8)
    day[: h // 2] = (180, 200, 235)                        # sky
    day[h // 2:, : w // 2] = 70                            # the left half of the road in a hard shadow
    out = night(day, seed=3).astype(float).mean(axis=2)
    road = out[int(0.85 * h):, :]
    edge_day = float(np.abs(np.diff(day[int(0.85 * h):].astype(float).mean(axis=2), axis=1)).max())
    left, right = road[:, w // 2 - 30: w // 2 - 5].mean(), road[:, w // 2 + 5: w // 2 + 30].mean()
    assert abs(left - right) < 0.15 * edge_day             # the shadow edge is (almost) gone
    near, far = out[int(0.95 * h):, w // 2 - 20: w // 2 + 20].mean(), out[int(0.6 * h), w // 2 - 20: w // 2 + 20].mean()
    assert near > 1.5 * far                                # headlights fall off with distance (sRGB)
    assert out.mean() < 0.35 * day.mean()                  # it is night
    assert out[: h // 2].max() > 200                       # lamp heads glow above the road
