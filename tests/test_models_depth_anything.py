"""ssd_student: Depth Anything (DINOv2 + DPT) through transformers, loaded from the three weight formats."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from depth_prior_ros.models import BackendError, Prediction, create_backend
from depth_prior_ros.models.depth_anything import DepthAnythingNet, depth_anything_config

import helpers_releases as hr
from helpers_models import TINY_DA, random_image, real_image, tiny_depth_anything, write_hf_folder, write_release_pth


@pytest.fixture(scope="module")
def tiny_model():
    return tiny_depth_anything(seed=1)


@pytest.fixture(scope="module")
def pixels():
    return torch.randn(1, 3, 56, 98, generator=torch.Generator().manual_seed(0))


def reference(model, pixels):
    with torch.no_grad():
        return model(pixel_values=pixels).predicted_depth


def expected_original_keys(layers: int) -> set[str]:
    """The released Depth-Anything checkpoint's key names, written out from its module layout
    (DINOv2 ViT in `pretrained`, DPT head in `depth_head`), independently of the converter."""
    names = {"pretrained.cls_token", "pretrained.mask_token", "pretrained.pos_embed",
             "pretrained.patch_embed.proj.weight", "pretrained.patch_embed.proj.bias",
             "pretrained.norm.weight", "pretrained.norm.bias"}
    for i in range(layers):
        b = f"pretrained.blocks.{i}"
        names |= {f"{b}.ls1.gamma", f"{b}.ls2.gamma"}
        for sub in ("norm1", "norm2", "attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            names |= {f"{b}.{sub}.weight", f"{b}.{sub}.bias"}
    for i in range(4):
        names |= {f"depth_head.projects.{i}.weight", f"depth_head.projects.{i}.bias"}
        if i != 2:  # level 2 keeps its resolution: no resize layer
            names |= {f"depth_head.resize_layers.{i}.weight", f"depth_head.resize_layers.{i}.bias"}
        names.add(f"depth_head.scratch.layer{i + 1}_rn.weight")
        r = f"depth_head.scratch.refinenet{i + 1}"
        names |= {f"{r}.out_conv.weight", f"{r}.out_conv.bias"}
        for unit in (1, 2):
            for conv in (1, 2):
                names |= {f"{r}.resConfUnit{unit}.conv{conv}.weight", f"{r}.resConfUnit{unit}.conv{conv}.bias"}
    for conv in ("output_conv1", "output_conv2.0", "output_conv2.2"):
        names |= {f"depth_head.scratch.{conv}.weight", f"depth_head.scratch.{conv}.bias"}
    return names


def test_published_variant_sizes():
    for variant, (hidden, layers, heads, neck, fusion, last) in {
        "vits": (384, 12, 6, [48, 96, 192, 384], 64, [9, 10, 11, 12]),
        "vitb": (768, 12, 12, [96, 192, 384, 768], 128, [9, 10, 11, 12]),
        "vitl": (1024, 24, 16, [256, 512, 1024, 1024], 256, [21, 22, 23, 24]),
    }.items():
        cfg = depth_anything_config(variant)
        bb = cfg.backbone_config
        assert (bb.hidden_size, bb.num_hidden_layers, bb.num_attention_heads) == (hidden, layers, heads)
        assert list(cfg.neck_hidden_sizes) == neck and cfg.fusion_hidden_size == fusion
        assert list(bb.out_indices) == last and bb.patch_size == 14 and bb.image_size == 518
        assert cfg.reassemble_hidden_size == hidden
    assert list(depth_anything_config("vitl", version=2).backbone_config.out_indices) == [5, 12, 18, 24]


def test_released_key_names_and_how_the_loader_reads_them(tmp_path):
    fixture = hr.read_fixture("depth_anything_v2_vits.pth")
    assert {key for key, *_ in fixture.entries} == expected_original_keys(12)
    state = hr.release_state(fixture)
    backend = create_backend("ssd_student", weights=str(hr.write_pth(state, tmp_path / "depth_anything_v2_vits.pth")),
                             device="cpu")
    model = backend.net.model
    # the fused projection stacks query, key, value in that order
    hidden = 384
    qkv = state["pretrained.blocks.2.attn.qkv.weight"]
    assert qkv.shape == (3 * hidden, hidden)
    module = model.backbone.encoder.layer[2].attention
    q_weight = module.q_proj.weight if hasattr(module, "q_proj") else module.attention.query.weight
    assert torch.equal(qkv[:hidden], q_weight)
    # refinenet4 (deepest level) is transformers' first fusion layer
    assert torch.equal(state["depth_head.scratch.refinenet4.out_conv.weight"],
                       model.neck.fusion_stage.layers[0].projection.weight)


def test_hf_folder_loads_and_predicts_real_image(tmp_path, tiny_model, pixels):
    folder = write_hf_folder(tiny_model, tmp_path / "hf")
    backend = create_backend("ssd_student", weights=str(folder), device="cpu")
    with torch.no_grad():
        assert torch.equal(backend.net(pixels), reference(tiny_model, pixels))
    image = real_image(160)
    if image is None:
        pytest.skip("real sample data (../shared/data) is absent")
    pred = backend.predict(image)
    assert isinstance(pred, Prediction) and pred.kind == "affine_disparity"
    assert pred.values.shape == image.shape[:2] and pred.values.dtype == np.float32
    assert np.isfinite(pred.values).all() and pred.values.std() > 0
    info = backend.describe()
    assert info["card_path"].endswith("card.json") and info["layout"] == "huggingface_folder"
    assert info["parameters"] == sum(p.numel() for p in tiny_model.parameters())


def test_training_safetensors_with_card_reproduces(tmp_path, tiny_model, pixels):
    path = DepthAnythingNet(tiny_model).save_pretrained(tmp_path / "student.safetensors")
    assert (tmp_path / "student.card.json").is_file()
    backend = create_backend("ssd_student", weights=str(path), device="cpu")
    with torch.no_grad():
        assert torch.equal(backend.net(pixels), reference(tiny_model, pixels))


def test_missing_key_fails_with_one_sentence_naming_file_and_key(tmp_path):
    path = write_release_pth(tmp_path / "broken.pth", values=False)
    state = torch.load(str(path), weights_only=True)
    del state["depth_head.scratch.refinenet2.resConfUnit1.conv2.bias"]
    torch.save(state, str(path))
    with pytest.raises(BackendError) as err:
        create_backend("ssd_student", weights=str(path), device="cpu")
    message = str(err.value)
    assert str(path) in message and "'depth_head.scratch.refinenet2.resConfUnit1.conv2.bias'" in message
    assert "missing" in message and "\n" not in message


def test_wrong_shape_fails_naming_first_mismatching_key(tmp_path):
    path = write_release_pth(tmp_path / "wrong.pth", values=False)
    state = torch.load(str(path), weights_only=True)
    state["pretrained.blocks.1.mlp.fc2.weight"] = torch.zeros(64, 100)
    torch.save(state, str(path))
    with pytest.raises(BackendError) as err:
        create_backend("ssd_student", weights=str(path), device="cpu")
    message = str(err.value)
    assert str(path) in message and "'pretrained.blocks.1.mlp.fc2.weight'" in message
    assert "(64, 100)" in message and "\n" not in message


def test_hf_folder_wrong_shape_names_hub_key(tmp_path, tiny_model):
    from safetensors.torch import load_file, save_file

    folder = write_hf_folder(tiny_model, tmp_path / "hf")
    state = load_file(str(folder / "model.safetensors"))
    state["head.conv3.weight"] = torch.zeros(2, 8, 1, 1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(BackendError, match=r"model\.safetensors: key 'head\.conv3\.weight' has shape \(2, 8, 1, 1\)"):
        create_backend("ssd_student", weights=str(folder), device="cpu")


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1, 1, 64), "payload": Exploit()}, str(path))
    with pytest.raises(BackendError) as err:
        create_backend("ssd_student", weights=str(path), device="cpu")
    assert "refusing" in str(err.value) and "system" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists()


def test_batch_of_cameras_different_sizes(tmp_path, tiny_model):
    backend = create_backend("ssd_student", weights=str(write_hf_folder(tiny_model, tmp_path / "hf")), device="cpu")
    a, b, c = random_image(60, 120, 1), random_image(60, 120, 2), random_image(48, 64, 3)
    batch = backend.predict_batch([a, c, b])
    assert [p.values.shape for p in batch] == [(60, 120), (48, 64), (60, 120)]
    single = backend.predict(b).values
    assert np.allclose(batch[2].values, single, rtol=1e-4, atol=1e-4 * np.abs(single).max())


def test_options_and_requirements_are_checked(tmp_path, tiny_model):
    with pytest.raises(BackendError, match="needs weights"):
        create_backend("ssd_student", device="cpu")
    with pytest.raises(BackendError, match="does not know option"):
        create_backend("ssd_student", weights="x", colour="red")
    with pytest.raises(BackendError, match="do not exist"):
        create_backend("ssd_student", weights=str(tmp_path / "nothing.pth"))
    folder = write_hf_folder(tiny_model, tmp_path / "hf")
    fixed = create_backend("ssd_student", weights=str(folder), device="cpu", dtype="fp16", input_size=[28, 42])
    assert fixed.network_size(375, 1242) == (28, 42)
    assert fixed.describe()["dtype"] == "fp32"  # fp16 falls back to fp32 on CPU
    tiny = create_backend("ssd_student", random_init=True, variant="vits", config=TINY_DA, device="cpu")
    assert tiny.predict(random_image(40, 70)).values.shape == (40, 70)


def test_the_authors_position_resize_traces_for_onnx_export(pixels):
    net = DepthAnythingNet(tiny_depth_anything(seed=2))
    net.resize_positions_like_dinov2()
    with torch.no_grad():
        traced = torch.jit.trace(net, pixels, check_trace=False)
        assert torch.allclose(traced(pixels), net(pixels), atol=1e-6)
