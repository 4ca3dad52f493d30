"""The released checkpoint layouts, checked without circularity.

Every checkpoint here is built from a fixture alone (tests/fixtures/releases: keys, shapes and dtypes read
off the authors' model definitions, seeded values; nothing from the project's key mapping), loaded through
the real loaders with no card, and its network must reproduce the output the authors' own code computed on
the same tensors (golden.json, made once outside the repository). A broken copy of each fixture must fail
in one sentence naming the key.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers_releases as hr
from depth_prior_ros.models import BackendError, create_backend
from helpers_errors import assert_one_sentence
from helpers_models import write_card

RELEASES = ["depth_anything_vits14.pth", "depth_anything_v2_vits.pth", "depth_anything_vitb14.pth",
            "depth_anything_v2_vitb.pth", "depth_anything_vitl14.pth", "depth_anything_v2_vitl.pth"]
TOLERANCE = 1e-5  # of the output's scale: the networks compute the same thing, float32 order aside


def golden_error(net, name: str) -> float:
    """Max |loader's network - authors' output| / max |authors' output| on the golden input of ``name``."""
    entry, reference = hr.golden(name)
    pixels = hr.golden_input(*entry["input"])
    with torch.no_grad():
        got = hr.sampled(net(pixels.clamp(-1, 1) if name.startswith("jasmine") else pixels), entry["stride"])
    assert (reference > 0).mean() > 0.5, f"{name}: the golden output is mostly zero (a dead ReLU proves little)"
    return float(np.abs(got - reference).max() / np.abs(reference).max())


def goldens(fixture: str) -> list[str]:
    return [name for name in hr.golden_names() if hr.golden(name)[0]["fixture"] == fixture]


def test_v1_and_v2_releases_have_the_same_keys_and_shapes():
    """Why the file cannot say its version: only the card or the release name can."""
    for size in ("s", "b", "l"):
        v1, v2 = hr.read_fixture(f"depth_anything_vit{size}14.pth"), hr.read_fixture(f"depth_anything_v2_vit{size}.pth")
        assert v1.entries == v2.entries and len(v1.entries) in (239, 407)


@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
def test_release_pth_without_card_reproduces_the_authors_network(release, tmp_path):
    """ViT-S and ViT-B against the authors' outputs (518x518 native, 126x224 with resized position
    embeddings); ViT-L by keys, shapes and parameter count (a strict load, no forward pass)."""
    fixture, names = hr.read_fixture(release), goldens(release)
    state = hr.release_state(fixture, hr.golden(names[0])[0]["seed"]) if names else hr.shapes_only(fixture)
    backend = create_backend("ssd_student", weights=str(hr.write_pth(state, tmp_path / release)), device="cpu")
    del state
    info = backend.describe()
    assert info["card_path"] == "defaults" and info["parameters"] == fixture.parameters
    assert info["layout"] == "depth_anything_original" and info["variant"] == release.split("_")[-1][:4]
    assert info["settings"].startswith(f"V{2 if '_v2_' in release else 1} from the file name")
    assert backend.output_kind == "affine_disparity" and (names or "vitl" in release)
    for name in names:
        assert golden_error(backend.net, name) <= TOLERANCE, name


def test_hugging_face_layout_equals_the_pth_with_the_same_tensors(tmp_path):
    """Depth-Anything-V2-Small-hf built from its fixture with the tensors it shares with the .pth (the 4th
    fixture column, from transformers' converter): both loaders give the authors' output at 518x518."""
    v2 = hr.release_state(hr.read_fixture("depth_anything_v2_vits.pth"))
    fixture = hr.read_fixture("depth_anything_v2_small_hf")
    folder = hr.write_folder(fixture, hr.release_state(fixture, sources=v2), tmp_path / "Depth-Anything-V2-Small-hf")
    hf = create_backend("ssd_student", weights=str(folder), device="cpu")
    pth = create_backend("ssd_student", weights=str(hr.write_pth(v2, tmp_path / "depth_anything_v2_vits.pth")),
                         device="cpu")
    assert hf.describe()["layout"] == "huggingface_folder" and hf.describe()["settings"] == "config.json"
    entry, reference = hr.golden("depth_anything_v2_vits.pth@518x518")
    pixels = hr.golden_input(*entry["input"])
    with torch.no_grad():
        out = hf.net(pixels)
        assert torch.allclose(out, pth.net(pixels), atol=1e-5 * float(out.abs().max()), rtol=0)
    assert np.abs(hr.sampled(out, entry["stride"]) - reference).max() <= TOLERANCE * np.abs(reference).max()


@pytest.mark.slow
def test_jasmine_release_reproduces_the_authors_pipeline(tmp_path):
    """unet/ (SD2 + 8-channel conv_in), vae/ and gru.pth at the released sizes, one step at t = 999."""
    backend = create_backend("jasmine", weights=str(hr.write_jasmine_release(tmp_path / "Jasmine")), device="cpu")
    info = backend.describe()
    assert info["layout"] == "jasmine_release" and info["timestep"] == 999 and info["gru"] == "on"
    assert golden_error(backend.net, "jasmine@64x128") <= TOLERANCE


def test_a_pth_named_otherwise_needs_a_card_to_say_its_version(tmp_path):
    state = hr.release_state(hr.read_fixture("depth_anything_v2_vits.pth"))
    path = hr.write_pth(state, tmp_path / "model.pth")
    with pytest.raises(BackendError, match="V1 or V2") as err:
        create_backend("ssd_student", weights=str(path), device="cpu")
    assert_one_sentence(err.value, path)
    card = {"architecture": "depth_anything", "variant": "vits", "short_side": 518, "multiple_of": 14,
            "options": {"version": 2}}
    write_card(path.with_suffix(".card.json"), card)
    backend = create_backend("ssd_student", weights=str(path), device="cpu")
    assert backend.describe()["settings"].startswith("V2 from the card model.card.json")
    assert golden_error(backend.net, "depth_anything_v2_vits.pth@126x224") <= TOLERANCE
    write_card(path.with_suffix(".card.json"), dict(card, variant="vitb"))
    with pytest.raises(BackendError, match="variant 'vitb' but its tensors are vits-sized") as err:
        create_backend("ssd_student", weights=str(path), device="cpu")
    assert_one_sentence(err.value, path)


def test_metric_release_names_say_metric_and_their_range(tmp_path):
    state = hr.release_state(hr.read_fixture("depth_anything_v2_vits.pth"))
    for name, max_depth in (("depth_anything_v2_metric_vkitti_vits.pth", 80.0),
                            ("depth_anything_v2_metric_hypersim_vits.pth", 20.0)):
        backend = create_backend("ssd_student", weights=str(hr.write_pth(state, tmp_path / name)), device="cpu")
        config = backend.net.config
        assert backend.output_kind == "metric_depth" and config.depth_estimation_type == "metric"
        assert config.max_depth == max_depth and "metric output from the file name" in backend.describe()["settings"]


@pytest.mark.parametrize("how", ["renamed", "dropped", "reshaped"])
@pytest.mark.parametrize("release", ["depth_anything_v2_vits.pth", "depth_anything_vits14.pth",
                                     "depth_anything_v2_small_hf"])
def test_a_broken_depth_anything_fixture_fails_naming_the_key(release, how, tmp_path):
    fixture, key = hr.broken(release, how)
    state = hr.shapes_only(fixture)
    if release.endswith("_hf"):
        weights = hr.write_folder(fixture, state, tmp_path / "hf")
        path = weights / "model.safetensors"
    else:
        weights = path = hr.write_pth(state, tmp_path / release)
    with pytest.raises(BackendError) as err:
        create_backend("ssd_student", weights=str(weights), device="cpu")
    assert f"'{key}'" in str(err.value) and str(path) in str(err.value)
    assert_one_sentence(err.value, path)


@pytest.mark.parametrize("how", ["renamed", "dropped", "reshaped"])
@pytest.mark.parametrize("part", ["jasmine_unet", "jasmine_vae", "jasmine_gru.pth"])
def test_a_broken_jasmine_fixture_fails_naming_the_key(part, how, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from depth_prior_ros.models.jasmine import load_diffusers_folder, load_gru

    fixture, key = hr.broken(part, how)
    path = tmp_path / fixture.file
    if part == "jasmine_gru.pth":
        vae_fixture = hr.read_fixture("jasmine_vae")
        with torch.device("meta"):
            vae = AutoencoderKL.from_config(vae_fixture.config)
        load = lambda: load_gru(hr.write_pth(hr.shapes_only(fixture), path), "first", vae)  # noqa: E731
    else:  # keys and shapes only (stride-0 tensors in a .bin): the strict check runs before any value is used
        path = path.with_suffix(".bin")
        hr.write_pth(hr.shapes_only(fixture), path)
        (path.parent / "config.json").write_text(__import__("json").dumps(fixture.config))
        cls = UNet2DConditionModel if part == "jasmine_unet" else AutoencoderKL
        load = lambda: load_diffusers_folder(cls, path.parent, part)  # noqa: E731
    with pytest.raises(BackendError) as err:
        load()
    assert f"'{key}'" in str(err.value) and str(path) in str(err.value)
    assert_one_sentence(err.value, path)
