"""Jasmine recipe: a tiny random SD-style UNet + VAE + Scale-Shift GRU fine-tunes on a fixed batch, and its
export (the released folder layout) loads into the node's jasmine backend with the same output."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from depth_prior_training.config import load_config  # noqa: E402
from depth_prior_training.data import SequenceDataset, batch_at_step, synthetic_frames  # noqa: E402


def test_jasmine_tiny_config_trains_and_exports(tmp_path):
    from depth_prior_ros.models import create_backend

    from depth_prior_training.jasmine_train import JasmineRecipe, jasmine_forward

    cfg = load_config(TRAINING / "configs" / "tiny_jasmine.yaml")
    frames = synthetic_frames([1000], width=128, height=64, progress=False)
    batch = batch_at_step(SequenceDataset(frames, (64, 128)), 0, 2, seed=0)
    torch.manual_seed(0)
    recipe = JasmineRecipe(cfg)
    net = recipe.modules["net"].net  # the node's JasmineNet inside the trainable wrapper
    assert not any(p.requires_grad for p in net.vae.parameters())  # the VAE stays frozen
    params = [p for m in recipe.modules.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    values = []
    for _ in range(6):
        loss, logs = recipe.loss(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert {"photometric", "edge", "reconstruction"} <= set(logs)  # mix batch: depth and image halves
    assert values[-1] < values[0]

    folder = recipe.export(tmp_path / "jasmine")
    for name in ("unet/config.json", "vae/config.json", "gru.pth", "empty_text_embed.safetensors", "card.json"):
        assert (folder / name).is_file(), name
    backend = create_backend("jasmine", weights=str(folder), device="cpu")
    from depth_prior_training.data import resize_image

    image = resize_image(frames[0].image, (64, 128))  # the card's network size
    pred = backend.predict(image)
    net.eval()
    with torch.no_grad():
        pixels = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255 * 2 - 1
        ref, _ = jasmine_forward(net, pixels, "depth")
    assert pred.kind == "scale_depth"
    assert np.allclose(pred.values, ref[0, 0].numpy(), rtol=1e-4, atol=1e-5)
