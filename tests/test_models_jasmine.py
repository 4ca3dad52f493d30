"""jasmine: SD2 VAE + UNet one-step depth and the Scale-Shift GRU, loaded from the released layout."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from depth_prior_ros.models import BackendError, create_backend
from depth_prior_ros.models.jasmine import SD2_SCHEDULER, alpha_bar_at, task_embedding, x0_from_prediction
from depth_prior_ros.models.scale_shift_gru import QueryCrossAttention, ScaleShiftGRU

from helpers_models import (TINY_GRU_HIDDEN, TINY_JASMINE_SIZE, random_image, randomize, real_image,
                            tiny_jasmine_parts, write_jasmine_folder)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    return write_jasmine_folder(tmp_path_factory.mktemp("jasmine") / "Jasmine", seed=0, with_tiny_vae=True)


@pytest.fixture(scope="module")
def pixels():
    return torch.rand(1, 3, *TINY_JASMINE_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1


def in_memory_depth(pixels, seed=0, link_mode="first"):
    """Jasmine's forward pass written out step by step with the in-memory tiny modules."""
    unet, vae, gru, text = tiny_jasmine_parts(seed)
    gru.link_mode = link_mode
    alpha_bar = float(__import__("diffusers").DDPMScheduler(**SD2_SCHEDULER).alphas_cumprod[999])
    with torch.no_grad():
        moments = vae.quant_conv(vae.encoder(pixels))
        latent = moments[:, :4] * vae.config.scaling_factor
        v = unet(torch.cat([latent, torch.zeros_like(latent)], 1), 999, encoder_hidden_states=text,
                 class_labels=task_embedding("depth")).sample
        x0 = -math.sqrt(1 - alpha_bar) * v  # x_t = 0
        decoded = vae.decoder(vae.post_quant_conv(x0 / vae.config.scaling_factor))
        return gru(latent, decoded)[:, 0]


def test_query_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    ours = QueryCrossAttention(16, heads=4)
    randomize(ours, seed=5)
    theirs = torch.nn.MultiheadAttention(16, num_heads=4)
    theirs.load_state_dict(ours.state_dict())  # identical parameter names and shapes
    queries, tokens = torch.randn(3, 2, 16), torch.randn(3, 40, 16)
    expected, _ = theirs(queries.transpose(0, 1), tokens.transpose(0, 1), tokens.transpose(0, 1), need_weights=False)
    assert torch.allclose(ours(queries, tokens), expected.transpose(0, 1), atol=1e-6)


def test_gru_layer_facts_and_output_range():
    gru = randomize(ScaleShiftGRU(hidden=64), seed=2, std=0.3).eval()
    state = gru.state_dict()
    assert state["project.weight"].shape == (64, 3, 1, 1)
    assert state["gru.convz1.weight"].shape == (64, 128, 1, 5) and state["gru.convq2.weight"].shape == (64, 128, 5, 1)
    assert state["ss_head.attn.in_proj_weight"].shape == (192, 64)
    assert state["ss_head.scale_query"].shape == (1, 64) and state["context_encoder.convc1.weight"].shape == (32, 4, 7, 7)
    with torch.no_grad():
        depth = gru(torch.randn(2, 4, 4, 8) * 3, torch.randn(2, 3, 32, 64) * 2)
    assert depth.shape == (2, 1, 32, 64)
    assert depth.min() >= 0 and depth.max() <= 3


def test_one_step_v_prediction_and_task_switcher():
    alpha_bar, prediction_type, t = alpha_bar_at(None, None)
    assert (t, prediction_type) == (999, "v_prediction")
    assert alpha_bar == pytest.approx(float(__import__("diffusers").DDPMScheduler(**SD2_SCHEDULER).alphas_cumprod[999]))
    v = torch.randn(1, 4, 2, 2)
    x0 = x0_from_prediction(v, torch.zeros_like(v), alpha_bar, "v_prediction")
    assert torch.allclose(x0, -math.sqrt(1 - alpha_bar) * v)
    assert torch.allclose(task_embedding("depth"), torch.tensor([[0.0, math.sin(1.0), 1.0, math.cos(1.0)]]))


def test_released_layout_reproduces_in_memory_output(released, pixels):
    backend = create_backend("jasmine", weights=str(released), device="cpu")
    info = backend.describe()
    assert info["output_kind"] == "scale_depth" and info["timestep"] == 999 and info["gru"] == "on"
    assert info["text_embedding"].endswith("empty_text_embed.safetensors")
    with torch.no_grad():
        got = backend.net(pixels)
    assert torch.allclose(got, in_memory_depth(pixels), atol=1e-6, rtol=0)
    assert got.min() >= 0 and got.max() <= 3


def test_predicts_real_image_at_input_size(released):
    image = real_image(200)
    if image is None:
        pytest.skip("real sample data (../shared/data) is absent")
    backend = create_backend("jasmine", weights=str(released), device="cpu")
    assert backend.network_size(*image.shape[:2]) == tuple(TINY_JASMINE_SIZE)
    pred = backend.predict(image)
    assert pred.kind == "scale_depth" and pred.values.shape == image.shape[:2]
    assert np.isfinite(pred.values).all() and 0 <= pred.values.min() and pred.values.max() <= 3


def test_options_tiny_vae_slicing_link_mode_and_no_gru(released, pixels):
    base = create_backend("jasmine", weights=str(released), device="cpu")
    sliced = create_backend("jasmine", weights=str(released), device="cpu", attention_slicing=True)
    with torch.no_grad():
        ref = base.net(pixels)
        assert torch.allclose(sliced.net(pixels), ref, atol=1e-5)
        tiny = create_backend("jasmine", weights=str(released), device="cpu", tiny_vae=True)
        assert "AutoencoderTiny" in tiny.describe()["decoder"]
        assert tiny.net(pixels).shape == ref.shape and not torch.allclose(tiny.net(pixels), ref)
        mean = create_backend("jasmine", weights=str(released), device="cpu", link_mode="mean")
        assert torch.allclose(mean.net(pixels), in_memory_depth(pixels, link_mode="mean"), atol=1e-6)
        plain = create_backend("jasmine", weights=str(released), device="cpu", gru=False)
        out = plain.net(pixels)
        assert out.min() >= 0 and out.max() <= 1 and plain.describe()["gru"] == "off"


def test_gru_checkpoint_errors_name_file_and_key(tmp_path):
    folder = write_jasmine_folder(tmp_path / "J", seed=1, card=None)
    state = torch.load(str(folder / "gru.pth"), weights_only=True)
    del state["module.ss_head.attn.out_proj.weight"]
    torch.save(state, str(folder / "gru.pth"))
    with pytest.raises(BackendError) as err:
        create_backend("jasmine", weights=str(folder), device="cpu")
    assert str(folder / "gru.pth") in str(err.value) and "'ss_head.attn.out_proj.weight'" in str(err.value)
    (folder / "gru.pth").unlink()
    with pytest.raises(BackendError, match="no gru.pth"):
        create_backend("jasmine", weights=str(folder), device="cpu")


def test_vae_with_the_old_attention_key_names_loads(tmp_path, pixels):
    from safetensors.torch import load_file, save_file

    folder = write_jasmine_folder(tmp_path / "J", seed=0)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state = {re.sub(r"(attentions\.\d+)\.(to_q|to_k|to_v|to_out\.0)\.", lambda m: f"{m[1]}.{old[m[2]]}.", k): v
             for k, v in load_file(str(weights)).items()}
    assert any(".proj_attn." in k for k in state)
    save_file(state, str(weights))
    with torch.no_grad():
        got = create_backend("jasmine", weights=str(folder), device="cpu").net(pixels)
    assert torch.allclose(got, in_memory_depth(pixels), atol=1e-6, rtol=0)


def test_unet_wrong_shape_names_file_and_key(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = write_jasmine_folder(tmp_path / "J", seed=2)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state["conv_in.weight"] = state["conv_in.weight"][:, :4].contiguous()  # an SD2 UNet without Jasmine's 8 channels
    save_file(state, str(weights))
    with pytest.raises(BackendError) as err:
        create_backend("jasmine", weights=str(folder), device="cpu")
    assert str(weights) in str(err.value) and "'conv_in.weight'" in str(err.value) and "\n" not in str(err.value)


def test_bad_configuration_is_one_sentence(released):
    with pytest.raises(BackendError, match="multiple of 16"):
        create_backend("jasmine", weights=str(released), device="cpu", input_size=[60, 128])
    with pytest.raises(BackendError, match="needs weights"):
        create_backend("jasmine", device="cpu")
    with pytest.raises(BackendError, match="does not know option"):
        create_backend("jasmine", weights=str(released), steps=4)


def test_gru_pth_pickle_with_code_is_refused(tmp_path):
    import os

    folder = write_jasmine_folder(tmp_path / "J", seed=3, card=None)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"project.weight": torch.zeros(TINY_GRU_HIDDEN, 3, 1, 1), "x": Exploit()}, str(folder / "gru.pth"))
    with pytest.raises(BackendError, match="refusing"):
        create_backend("jasmine", weights=str(folder), device="cpu")
    assert not marker.exists()


def test_batch_matches_single(released):
    backend = create_backend("jasmine", weights=str(released), device="cpu")
    a, b = random_image(50, 150, 1), random_image(50, 150, 2)
    both = backend.predict_batch([a, b])
    assert np.allclose(both[1].values, backend.predict(b).values, atol=1e-5)


def test_empty_prompt_embedding_from_a_local_text_encoder(tmp_path, capsys):
    """`weights text-embedding` and the loader's fallback run the empty prompt ([BOS, EOS]) through CLIP."""
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from depth_prior_ros.cli import main as cli_main
    from depth_prior_ros.models.jasmine import CLIP_BOS_ID, CLIP_EOS_ID

    folder = write_jasmine_folder(tmp_path / "J", seed=4, card=None)
    (folder / "empty_text_embed.safetensors").unlink()
    config = CLIPTextConfig(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=8)
    encoder = randomize(CLIPTextModel(config), seed=9).eval()
    encoder.save_pretrained(str(folder / "text_encoder"))
    with torch.no_grad():
        expected = encoder(torch.tensor([[CLIP_BOS_ID, CLIP_EOS_ID]])).last_hidden_state

    out = tmp_path / "empty.safetensors"
    assert cli_main(["weights", "text-embedding", "--text-encoder", str(folder / "text_encoder"), "--out", str(out)]) == 0
    assert "(1, 2, 16)" in capsys.readouterr().out
    assert torch.allclose(load_file(str(out))["empty_text_embed"], expected, atol=1e-6)

    backend = create_backend("jasmine", weights=str(folder), device="cpu")
    assert backend.describe()["text_embedding"].endswith("text_encoder")
    assert torch.allclose(backend.net.text_embedding, expected, atol=1e-6)
