"""A weights file or a model card must never make the loaders run code (or reach the network).

Each hostile file is written by the test in the format the loader expects: pickles whose __reduce__
would write a marker file, cards with remote-code keys, YAML with Python tags, Hugging Face folders
with auto_map + a modeling file, diffusers folders naming another class. Every one is either refused
with one clear sentence (BackendError) or loaded as plain data, and the marker file never appears.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

from depth_prior_ros.models import create_backend  # noqa: E402
from depth_prior_ros.models.base import BackendError  # noqa: E402
from depth_prior_ros.models.card import card_from_dict, read_card  # noqa: E402
from depth_prior_ros.models.checkpoints import read_state_dict, safe_torch_load  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import helpers_models as hm  # noqa: E402
from helpers_errors import assert_one_sentence as one_sentence  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def assert_one_sentence(exc: BaseException, *paths) -> None:
    """The tests' tmp folders in the message do not count towards its length."""
    one_sentence(exc, *paths, ignore_paths=True)





class WritesMarker:
    """Unpickling this would call exec(...) and write the marker: the classic pickle payload."""

    def __init__(self, marker: Path, how: str = "exec"):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "system":
            return os.system, (f"touch {self.marker}",)
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def payload_state(marker: Path, how: str = "exec") -> dict:
    """A state dict that looks normal but carries the payload next to real tensors."""
    return {"project.weight": torch.zeros(2, 2), "evil": WritesMarker(marker, how)}


def write_payload(path: Path, marker: Path, fmt: str = "zip", how: str = "exec") -> Path:
    if fmt == "zip":  # torch.save's zip container (the format of every modern .pth)
        torch.save(payload_state(marker, how), str(path))
    else:  # a bare pickle stream (the legacy format torch.load still reads)
        with open(path, "wb") as f:
            pickle.dump(payload_state(marker, how), f, protocol=2)
    return path


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "CODE_RAN"
    yield path
    assert not path.exists(), "a weights file or card made the loader run code"


# --------------------------------------------------------------------------------- pickle payloads
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt"])
@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("how", ["exec", "system"])
def test_pickle_payloads_are_refused_before_anything_runs(tmp_path, marker, suffix, fmt, how):
    path = write_payload(tmp_path / f"weights{suffix}", marker, fmt, how)
    with pytest.raises(BackendError) as info:
        read_state_dict(path)
    assert_one_sentence(info.value)
    assert "refusing" in str(info.value) and str(path) in str(info.value)
    with pytest.raises(BackendError):
        safe_torch_load(path)


def test_ssd_student_refuses_a_pickle_payload(tmp_path, marker):
    path = write_payload(tmp_path / "depth_anything_vits.pth", marker)
    hm.write_card(path.with_suffix(".card.json"), hm.TINY_DA_CARD)
    with pytest.raises(BackendError) as info:
        create_backend("ssd_student", weights=str(path), device="cpu")
    assert_one_sentence(info.value)


def test_ssd_student_refuses_a_payload_in_a_hugging_face_folder(tmp_path, marker):
    folder = hm.write_hf_folder(hm.tiny_depth_anything(), tmp_path / "hf")
    (folder / "model.safetensors").unlink()
    write_payload(folder / "pytorch_model.bin", marker)
    with pytest.raises(BackendError) as info:
        create_backend("ssd_student", weights=str(folder), device="cpu")
    assert_one_sentence(info.value)


def test_a_pickle_renamed_to_safetensors_is_not_unpickled(tmp_path, marker):
    path = write_payload(tmp_path / "model.safetensors", marker, fmt="legacy")
    with pytest.raises(BackendError) as info:
        read_state_dict(path)
    assert_one_sentence(info.value)


@pytest.fixture(scope="module")
def jasmine_folder(tmp_path_factory):
    return hm.write_jasmine_folder(tmp_path_factory.mktemp("jasmine") / "Jasmine")


def _copy_folder(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_jasmine_refuses_a_gru_pth_payload(tmp_path, marker, jasmine_folder, fmt):
    folder = _copy_folder(jasmine_folder, tmp_path / "Jasmine")
    write_payload(folder / "gru.pth", marker, fmt)
    with pytest.raises(BackendError) as info:
        create_backend("jasmine", weights=str(folder), device="cpu")
    assert_one_sentence(info.value)
    assert "gru.pth" in str(info.value)


def test_jasmine_refuses_a_payload_in_the_unet_folder(tmp_path, marker, jasmine_folder):
    folder = _copy_folder(jasmine_folder, tmp_path / "Jasmine")
    for f in (folder / "unet").glob("diffusion_pytorch_model*.safetensors"):
        f.unlink()
    write_payload(folder / "unet" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(BackendError) as info:
        create_backend("jasmine", weights=str(folder), device="cpu")
    assert_one_sentence(info.value)


def test_the_untouched_jasmine_folder_still_loads(jasmine_folder):
    """The refusals above are about the payloads, not the format: the genuine folder loads."""
    backend = create_backend("jasmine", weights=str(jasmine_folder), device="cpu")
    assert backend.output_kind == "scale_depth"


def test_jasmine_ignores_a_class_name_it_did_not_ask_for(tmp_path, marker, jasmine_folder):
    folder = _copy_folder(jasmine_folder, tmp_path / "Jasmine")
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["_class_name"] = "EvilUNet"
    config["auto_map"] = {"UNet2DConditionModel": "evil_module.EvilUNet"}
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    (folder / "unet" / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    with pytest.raises(BackendError) as info:
        create_backend("jasmine", weights=str(folder), device="cpu")
    assert_one_sentence(info.value)
    assert "EvilUNet" in str(info.value)


# --------------------------------------------------------------------------------- cards and configs
REMOTE_CODE_KEYS = {"trust_remote_code": True, "auto_map": {"AutoModel": "evil_module.Evil"},
                    "code": "__import__('os').system('touch /tmp/never')", "__class__": "os.system",
                    "custom_pipelines": "evil_module"}


def test_card_with_remote_code_keys_is_read_as_plain_data(tmp_path, marker, caplog):
    card = dict(hm.V2S_CARD, **REMOTE_CODE_KEYS)
    card["options"] = dict(card["options"], trust_remote_code=True)
    path = hm.write_card(tmp_path / "m.card.json", card)
    parsed = read_card(path)
    assert not hasattr(parsed, "trust_remote_code") and not hasattr(parsed, "auto_map")
    assert "ignoring unknown card fields" in caplog.text and "trust_remote_code" in caplog.text
    # ... and a backend loaded with that card runs normally, with the remote-code keys doing nothing.
    weights = hm.write_release_pth(tmp_path / "m.pth", card=None)
    backend = create_backend("ssd_student", weights=str(weights), device="cpu")
    assert backend.card.path == str(path)
    assert backend.predict(hm.random_image(56, 84)).values.shape == (56, 84)


def test_yaml_card_with_python_tags_is_refused(tmp_path, marker):
    path = tmp_path / "m.card.yaml"
    path.write_text(f"architecture: depth_anything\nnotes: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(BackendError) as info:
        read_card(path)
    assert_one_sentence(info.value)


@pytest.mark.parametrize("bad", ["not a mapping", ["a", "list"], None, 42])
def test_card_that_is_not_a_mapping_is_one_sentence(bad):
    with pytest.raises(BackendError) as info:
        card_from_dict(bad, where="m.card.json")
    assert_one_sentence(info.value)


def test_hugging_face_folder_with_auto_map_runs_no_modeling_file(tmp_path, marker):
    folder = hm.write_hf_folder(hm.tiny_depth_anything(), tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    config.update(auto_map={"AutoModelForDepthEstimation": "modeling_evil.Evil",
                            "AutoConfig": "modeling_evil.EvilConfig"}, trust_remote_code=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    backend = create_backend("ssd_student", weights=str(folder), device="cpu")
    assert type(backend.net).__module__.startswith("depth_prior_ros")
    assert backend.predict(hm.random_image(56, 84)).values.shape == (56, 84)


def test_card_hf_config_with_remote_code_keys_runs_no_code(tmp_path, marker):
    from depth_prior_ros.models.depth_anything import depth_anything_config

    hf = depth_anything_config("vits", version=2).to_dict()
    hf.update(auto_map={"AutoModel": "modeling_evil.Evil"}, trust_remote_code=True)
    weights = hm.write_release_pth(tmp_path / "m.pth", card=dict(hm.V2S_CARD, options={"hf_config": hf}))
    (tmp_path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n")
    backend = create_backend("ssd_student", weights=str(weights), device="cpu")
    assert backend.predict(hm.random_image(56, 84)).values.shape == (56, 84)


OFFLINE_PROBE = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{src!r}, {tests!r}]
    import helpers_models as hm
    from pathlib import Path
    from depth_prior_ros.models import create_backend
    from depth_prior_ros.models.base import BackendError
    from depth_prior_ros.models.depth_anything import depth_anything_config
    tmp = Path({tmp!r})
    hf = depth_anything_config("vits", version=2).to_dict()
    hf.update(json.loads({changes!r}))
    weights = hm.write_release_pth(tmp / "m.pth", card=dict(hm.V2S_CARD, options={{"hf_config": hf}}), values=False)
    try:
        create_backend("ssd_student", weights=str(weights), device="cpu")
        print("LOADED")
    except BackendError as exc:
        print("BackendError:", exc)
    except Exception as exc:
        print("OTHER:", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
""")


@pytest.mark.parametrize("changes", [{"use_pretrained_backbone": True, "backbone": "facebook/dinov2-small",
                                      "backbone_config": None},
                                     {"backbone_config": 5}])
def test_card_hf_config_cannot_send_the_loader_to_the_hub(tmp_path, changes):
    """Run in a child with the Hub switched off from the start, so nothing can reach the network."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    code = OFFLINE_PROBE.format(src=str(REPO / "src"), tests=str(REPO / "tests"), tmp=str(tmp_path),
                                changes=json.dumps(changes))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    out = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    assert out.startswith("BackendError:"), out
    assert "\n" not in out


# --------------------------------------------------------------------------------- ONNX
def _onnx_model(path: Path, op_domain: str = "", card: dict | None = None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("EvilOp" if op_domain else "ReduceMean", ["pixels"], ["depth"],
                            domain=op_domain or "", **({} if op_domain else {"axes": [1], "keepdims": 0}))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, 14, 14])],
                              [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 14, 14])])
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid(op_domain, 1)] if op_domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8  # what the installed onnxruntime reads (onnx may default to a newer IR)
    if card is not None:
        model.metadata_props.append(onnx.StringStringEntryProto(key="depth_prior_card", value=json.dumps(card)))
    onnx.save(model, str(path))
    return path


def test_onnx_graph_needing_a_custom_op_library_is_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    path = _onnx_model(tmp_path / "m.onnx", op_domain="com.evil")
    hm.write_card(path.with_suffix(".card.json"), dict(hm.TINY_DA_CARD, input_size=[14, 14]))
    with pytest.raises(BackendError) as info:
        create_backend("onnx", weights=str(path), device="cpu")
    assert_one_sentence(info.value, path)


def test_onnx_card_with_remote_code_keys_is_plain_data(tmp_path, marker):
    pytest.importorskip("onnxruntime")
    path = _onnx_model(tmp_path / "m.onnx")
    hm.write_card(path.with_suffix(".card.json"), dict(hm.TINY_DA_CARD, input_size=[14, 14], **REMOTE_CODE_KEYS))
    backend = create_backend("onnx", weights=str(path), device="cpu")
    assert backend.predict(hm.random_image(28, 28)).values.shape == (28, 28)
