"""SSD recipe: teacher and student optimise on a fixed batch; the exported student loads into the node's
ssd_student backend and reproduces the training model; resuming continues the same run."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"
if str(TRAINING) not in sys.path:
    sys.path.insert(0, str(TRAINING))
CONFIGS = TRAINING / "configs"

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from depth_prior_training import losses  # noqa: E402
from depth_prior_training.config import load_config  # noqa: E402
from depth_prior_training.data import SequenceDataset, batch_at_step, synthetic_frames  # noqa: E402
from depth_prior_training.synthetic import fallback_translate  # noqa: E402


@pytest.fixture(scope="module")
def dataset():
    frames = synthetic_frames([1000, 1001], width=112, height=56, conditions=["night", "rain"],
                              translator=fallback_translate, progress=False)
    return SequenceDataset(frames, (56, 112), conditions=["night", "rain"], translate_probability=0.5)


def _optimise(recipe, batch, steps=8, lr=2e-3):
    params = [p for m in recipe.modules.values() for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    values = []
    for step in range(steps):
        loss, _ = recipe.loss(batch, 0)  # step 0 every time: the same auto-mask noise, a truly fixed objective
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    return values


def _teacher_cfg(tmp_path, **overrides):
    cfg = load_config(CONFIGS / "tiny_ssd_teacher.yaml")
    cfg["output_dir"] = str(tmp_path / "teacher")
    cfg.update(overrides)
    return cfg


def test_photometric_loss_is_zero_for_the_true_warp():
    """Warping a frame with its exact depth and pose reproduces the target: the loss is ~0 there."""
    from depth_prior_training.synthetic import render_sequence
    from depth_prior_training.data import relative_pose
    from depth_prior_training.warp import warp_image

    views, K, poses = render_sequence(5, 96, 64, 2, speed=5.0)
    img = [torch.from_numpy(v.image).permute(2, 0, 1).float()[None] / 255 for v in views]
    depth = torch.from_numpy(np.nan_to_num(views[1].depth, nan=1e4))[None, None]
    T = torch.from_numpy(relative_pose(poses[0], poses[1])).float()[None]
    Kt = torch.from_numpy(K).float()[None]
    warped = warp_image(img[0], depth, Kt, T)
    true_err = losses.photometric_error(warped, img[1]).median()
    wrong_err = losses.photometric_error(warp_image(img[0], depth * 0.4, Kt, T), img[1]).median()
    assert true_err < 0.5 * wrong_err


def test_teacher_loss_falls_on_a_fixed_batch(dataset, tmp_path):
    from depth_prior_training.ssd import SSDTeacher

    torch.manual_seed(0)
    recipe = SSDTeacher(_teacher_cfg(tmp_path))
    for m in recipe.modules.values():
        m.train()
    batch = batch_at_step(dataset, 0, 2, seed=0)
    values = _optimise(recipe, batch)
    assert values[-1] < values[0]


def _student_cfg(tmp_path, teacher_ckpt):
    cfg = load_config(CONFIGS / "tiny_ssd_student.yaml")
    cfg["output_dir"] = str(tmp_path / "student")
    cfg["student"]["teacher_checkpoint"] = str(teacher_ckpt)
    return cfg


def test_student_trains_and_loads_into_the_node_backend(dataset, tmp_path):
    from depth_prior_ros.models import create_backend

    from depth_prior_training.ssd import SSDStudent, SSDTeacher
    from depth_prior_training.student import student_forward

    torch.manual_seed(0)
    teacher_ckpt = SSDTeacher(_teacher_cfg(tmp_path)).export(tmp_path / "teacher")
    recipe = SSDStudent(_student_cfg(tmp_path, teacher_ckpt))
    batch = batch_at_step(dataset, 0, 2, seed=0)
    batch["has_translated"][:] = True  # exercise the semantic loss on this fixed batch
    batch["translated"] = batch["translated"] * 0.3
    _, logs = recipe.loss(batch, 0)
    assert {"teacher", "semantic", "photometric", "teacher_mask"} <= set(logs)
    values = _optimise(recipe, batch, lr=1e-3)
    assert values[-1] < values[0]

    weights = recipe.export(tmp_path / "export")
    assert weights.is_file() and weights.with_suffix(".card.json").is_file()
    backend = create_backend("ssd_student", weights=str(weights), device="cpu")
    assert backend.output_kind == "affine_disparity"
    from depth_prior_training.data import resize_image

    image = resize_image(dataset.frame(0).translated["night"], (56, 112))  # the card's network size
    pred = backend.predict(image)
    model = recipe.modules["student"].eval()
    with torch.no_grad():
        ref, _ = student_forward(model, torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)
    assert np.allclose(pred.values, ref[0, 0].numpy(), rtol=1e-4, atol=1e-5)

    # ONNX through the node's exporter, which measures parity against PyTorch.
    pytest.importorskip("onnxruntime")
    from depth_prior_training.export import export_onnx

    report = export_onnx(weights, tmp_path / "student.onnx")
    assert (tmp_path / "student.onnx").is_file()
    assert report.max_rel_error <= 1e-4


def test_scale_depth_student_exports_a_card_the_node_inverts(dataset, tmp_path):
    """student.output_kind: scale_depth: the card says scale_depth with options.disparity_offset, and the node's
    backends (PyTorch and ONNX Runtime) publish depth = 1 / (output + 1 / teacher max_depth), which is what the
    training validation scores."""
    from depth_prior_ros.models import create_backend

    from depth_prior_training.data import resize_image
    from depth_prior_training.ssd import SSDStudent, SSDTeacher
    from depth_prior_training.student import student_forward

    torch.manual_seed(0)
    teacher_ckpt = SSDTeacher(_teacher_cfg(tmp_path)).export(tmp_path / "teacher")
    cfg = _student_cfg(tmp_path, teacher_ckpt)
    cfg["student"]["output_kind"] = "scale_depth"
    recipe = SSDStudent(cfg)
    offset = 1.0 / recipe.teacher.max_depth
    weights = recipe.export(tmp_path / "export")
    backend = create_backend("ssd_student", weights=str(weights), device="cpu")
    assert backend.output_kind == "scale_depth" and backend.card.disparity_offset == pytest.approx(offset)

    image = resize_image(dataset.frame(0).image, (56, 112))  # the card's network size: no resampling
    model = recipe.modules["student"].eval()
    with torch.no_grad():
        raw, _ = student_forward(model, torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255)
    expected = 1.0 / (raw[0, 0].clamp_min(0).numpy() + offset)
    assert np.allclose(backend.predict(image).values, expected, rtol=1e-4)
    values, kind = recipe.predict_for_validation(image[None])
    assert kind == "scale_depth" and np.allclose(values[0], expected, rtol=1e-5)

    pytest.importorskip("onnxruntime")
    from depth_prior_training.export import export_onnx

    export_onnx(weights, tmp_path / "student.onnx")
    onnx = create_backend("onnx", weights=str(tmp_path / "student.onnx"), device="cpu")
    assert onnx.output_kind == "scale_depth"
    assert np.allclose(onnx.predict(image).values, expected, rtol=1e-3)

    with pytest.raises(ValueError, match="output_kind"):
        SSDStudent(dict(cfg, student=dict(cfg["student"], output_kind="disparity")))


def test_student_ground_prior_adds_the_weighted_prior_loss(dataset, tmp_path):
    """losses.ground_prior on the student: the total grows by exactly weight x ground_prior_loss of the student's
    depth (from the translated input) against the batch's prior layers; without prior layers it says what to set."""
    from depth_prior_training.ssd import SSDStudent, SSDTeacher
    from depth_prior_training.student import student_forward

    torch.manual_seed(0)
    teacher_ckpt = SSDTeacher(_teacher_cfg(tmp_path)).export(tmp_path / "teacher")
    cfg = _student_cfg(tmp_path, teacher_ckpt)
    plain = SSDStudent(cfg)
    weighted = SSDStudent(dict(cfg, losses=dict(cfg["losses"], ground_prior=0.1, prior_layers=[1.0, 1.0, 1.0])))
    weighted.modules["student"].load_state_dict(plain.modules["student"].state_dict())
    batch = batch_at_step(dataset, 0, 2, seed=0)
    h, w = batch["image"].shape[-2:]
    prior = torch.zeros(2, 3, h, w)
    prior[:, 0, h // 2:] = 8.0     # a road layer on the lower half
    prior[:, 1, h // 4:h // 2] = 20.0
    prior[:, 2, h // 2:] = 12.0
    batch["prior_depth"] = prior
    base, _ = plain.loss(batch, 0)
    total, logs = weighted.loss(batch, 0)
    with torch.no_grad():
        disp, _ = student_forward(plain.modules["student"], batch["translated"])
    expected = losses.ground_prior_loss(plain.depth_from_output(disp), prior, (1.0, 1.0, 1.0))
    assert logs["ground_prior"] == pytest.approx(float(expected), rel=1e-5)
    assert float((total - base).detach()) == pytest.approx(0.1 * float(expected), rel=1e-4)
    del batch["prior_depth"]
    with pytest.raises(ValueError, match="road_segmenter"):
        weighted.loss(batch, 0)


def test_resume_continues_the_same_run(dataset, tmp_path):
    from depth_prior_training.checkpoint import latest_checkpoint
    from depth_prior_training.train import run
    from safetensors.torch import load_file

    straight = run(_teacher_cfg(tmp_path / "a", steps=4, checkpoint_every=2), progress=False, dataset=dataset)
    first = run(_teacher_cfg(tmp_path / "b", steps=4, checkpoint_every=2, stop_at=2), progress=False, dataset=dataset)
    assert "export" not in first and latest_checkpoint(first["out_dir"]).name == "step_000002"
    resumed = run(_teacher_cfg(tmp_path / "b", steps=4, checkpoint_every=2), resume=True, progress=False,
                  dataset=dataset)
    assert [h["step"] for h in resumed["history"]] == [3, 4]
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in straight["history"][2:]],
                                                                    rel=1e-6)
    a = load_file(str(Path(straight["out_dir"]) / "checkpoints" / "step_000004" / "modules.safetensors"))
    b = load_file(str(Path(resumed["out_dir"]) / "checkpoints" / "step_000004" / "modules.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_student_weight_average_steps_exactly_and_resumes_bit_for_bit(dataset, tmp_path):
    """student.ema: each step moves the average by (1 - decay) towards the trained weights; validation and the
    export use the average; a stopped and resumed run checkpoints the same average as a straight one."""
    from depth_prior_training.checkpoint import unwrap
    from depth_prior_training.ssd import SSDStudent, SSDTeacher
    from depth_prior_training.train import run
    from safetensors.torch import load_file

    torch.manual_seed(0)
    teacher_ckpt = SSDTeacher(_teacher_cfg(tmp_path)).export(tmp_path / "teacher")
    cfg = _student_cfg(tmp_path, teacher_ckpt)
    cfg["student"]["ema"] = 0.75
    recipe = SSDStudent(cfg)
    assert recipe.served() is recipe.modules["student_ema"]
    trained, average = (unwrap(recipe.modules[n]) for n in ("student", "student_ema"))
    before = [p.detach().clone() for p in average.parameters()]
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    recipe.after_step(0)
    for b, a, p in zip(before, average.parameters(), trained.parameters()):
        assert torch.allclose(a, 0.75 * b + 0.25 * p, atol=1e-6)
    with pytest.raises(ValueError, match="student.ema"):
        SSDStudent(dict(cfg, student=dict(cfg["student"], ema=1.0)))

    def student_run(folder, **extra):
        c = dict(cfg, output_dir=str(tmp_path / folder), steps=4, checkpoint_every=2, **extra)
        return run(c, resume="stop_at" not in extra and folder == "b", progress=False, dataset=dataset)

    student_run("a")
    student_run("b", stop_at=2)
    student_run("b")
    a = load_file(str(tmp_path / "a" / "checkpoints" / "step_000004" / "modules.safetensors"))
    b = load_file(str(tmp_path / "b" / "checkpoints" / "step_000004" / "modules.safetensors"))
    assert any(k.startswith("student_ema.") for k in a) and a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_losses_basic_properties():
    x = torch.rand(1, 3, 16, 16)
    assert float(losses.photometric_error(x, x).max()) < 1e-6
    d = torch.rand(1, 1, 8, 8) + 0.5
    assert float(losses.teacher_loss(d, d, None)) == 0.0
    f = [torch.randn(2, 5, 4)]
    assert float(losses.semantic_loss(f, f)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.semantic_loss(f, [-f[0]])) == pytest.approx(2.0, abs=1e-5)
    mask = losses.teacher_mask(torch.tensor([[[[0.1, 0.5]]]]), torch.tensor([[[[0.2, 0.3]]]]))
    assert mask.flatten().tolist() == [1.0, 0.0]


def test_student_and_teacher_sizes_are_separate(dataset, tmp_path):
    """A teacher trained at 64x128 (multiples of 8) distils into a student at 56x112 (multiples of 14)."""
    from depth_prior_training.ssd import SSDStudent, SSDTeacher

    torch.manual_seed(0)
    teacher = SSDTeacher(_teacher_cfg(tmp_path, data={"size": [64, 128]}))
    ckpt = teacher.export(tmp_path / "teacher")
    recipe = SSDStudent(_student_cfg(tmp_path, ckpt))
    assert recipe.teacher.size == (64, 128)
    batch = batch_at_step(dataset, 0, 2, seed=0)  # student size 56x112
    assert recipe.teacher.predict_depth(batch["image"]).shape == (2, 1, 56, 112)
    loss, logs = recipe.loss(batch, 0)
    assert torch.isfinite(loss) and "teacher" in logs
