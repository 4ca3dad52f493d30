"""SSD recipe (Mao et al., "Stealing Stable Diffusion Prior for Robust Monocular Depth Estimation",
arXiv 2403.05056): a day-clear teacher, then a Depth Anything student on original or translated frames.

Recipes (each: trainable ``modules``, ``loss(batch, step) -> (total, logs)``, ``export(folder)``):
  SSDTeacher     monodepth2-style self-supervised teacher (depth net + pose net, photometric with
                 min-reprojection and auto-masking, edge-aware smoothness); ``supervision: depth``
                 trains the same depth net on ground-truth depth instead (the demo's synthetic teacher).
  SSDStudent     the student: teacher loss (log-depth L1 to the teacher's depth on the CLEAN image,
                 masked per pixel where the teacher reprojects better than the student), semantic loss
                 (1 - cos of DINOv2 features, original vs translated), photometric loss.
"""
from __future__ import annotations

import copy

from pathlib import Path

import numpy as np
import torch

from . import losses
from .nets import PoseNet, TeacherDepthNet, disp_to_depth, pose_transform
from .student import build_student, student_forward, wrap_student
from .warp import warp_with_validity


def upsample(x: torch.Tensor, size) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def neighbour_poses(batch: dict, pose_net: PoseNet | None, source: str) -> list[torch.Tensor]:
    """T_source_from_target for prev and next: from the pose net, or the batch's known poses ("gt")."""
    if source == "gt":
        if not torch.isfinite(batch["T_prev"]).all():
            raise ValueError("poses: gt needs known poses in every sample (synthetic data); use poses: posenet")
        return [batch["T_prev"], batch["T_next"]]
    return [pose_transform(pose_net, batch["image"], batch["prev"], source_is_before=True),
            pose_transform(pose_net, batch["image"], batch["next"], source_is_before=False)]


def source_views(batch: dict, poses: list[torch.Tensor], stereo: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(source image, T_source_from_target) pairs: t-1 and t+1 with ``poses``, plus the stereo partner
    with its known rig transform when ``stereo`` (monodepth2's M+S setting; it also fixes the scale)."""
    views = list(zip((batch["prev"], batch["next"]), poses))
    if stereo:
        if "stereo" not in batch:
            raise ValueError("teacher.stereo needs a stereo source (data.stereo: true on KITTI, stereo_baseline on synth)")
        views.append((batch["stereo"], batch["T_stereo"]))
    return views


def reprojection(depth: torch.Tensor, batch: dict, poses: list[torch.Tensor], stereo: bool = False) -> torch.Tensor:
    """Min photometric error (B, 1, H, W) of the clean target against its source views warped by ``depth``."""
    warps = [warp_with_validity(image, depth, batch["K"], T) for image, T in source_views(batch, poses, stereo)]
    return losses.min_reprojection([w for w, _ in warps], batch["image"], [v for _, v in warps])


def flip_batch(batch: dict, flip: torch.Tensor) -> dict:
    """Mirror the samples where ``flip`` (B,) bool: images left-right, K's cx, and the stereo rig's x
    (monodepth2's flip augmentation; poses come from the pose net on the flipped frames)."""
    out = dict(batch)
    where = flip.view(-1, 1, 1, 1)
    for key in ("image", "prev", "next", "stereo", "translated", "prior_depth"):
        if key in batch:
            out[key] = torch.where(where, batch[key].flip(-1), batch[key])
    width = batch["image"].shape[-1]
    K = batch["K"].clone()
    K[:, 0, 2] = torch.where(flip, width - 1 - K[:, 0, 2], K[:, 0, 2])
    out["K"] = K
    if "T_stereo" in batch:
        mirror = torch.diag(torch.tensor([-1.0, 1, 1, 1], device=K.device, dtype=batch["T_stereo"].dtype))
        out["T_stereo"] = torch.where(flip.view(-1, 1, 1), mirror @ batch["T_stereo"] @ mirror, batch["T_stereo"])
    return out


def ground_prior_weights(cfg: dict) -> tuple[float, tuple[float, ...]]:
    """(losses.ground_prior, losses.prior_layers) of a config: the embodied prior's weight (0: off) and its
    per-layer weights (road, upright surfaces, ground bound), as both recipes read them."""
    w = cfg.get("losses", {})
    return float(w.get("ground_prior", 0.0)), tuple(float(v) for v in w.get("prior_layers", (1.0, 0.0, 0.0)))


def require_prior_layers(batch: dict) -> None:
    """The ground-prior loss needs the batch's prior layers; say which config key makes them."""
    if "prior_depth" not in batch:
        raise ValueError("losses.ground_prior needs road masks in the data: set data.road_segmenter "
                         "(weights, card) on a source with a camera pose above the road")


def step_generator(seed: int, step: int, device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + step)
    return g


class SSDTeacher:
    """The day-clear teacher. cfg keys: teacher.channels, teacher.min_depth, teacher.max_depth,
    teacher.supervision (self|depth), teacher.poses (posenet|gt), teacher.stereo (add the stereo partner
    as a source view), teacher.flip (probability of a mirrored sample), teacher.init_depth (the depth
    every pixel starts at; see README "Why it collapsed"), losses.smoothness (1e-3), losses.ground_prior
    (0: off; the weight of ``losses.ground_prior_loss``, needs ``data.road_segmenter``), losses.prior_layers
    (its per-layer weights: road, upright surfaces, ground-plane bound), seed.
    Its training size is ``data.size`` (a multiple of 2 ** len(channels)), recorded in its export."""

    def __init__(self, cfg: dict):
        t = cfg.get("teacher", {})
        self.cfg = cfg
        self.min_depth = float(t.get("min_depth", 0.1))
        self.max_depth = float(t.get("max_depth", 100.0))
        self.supervision = t.get("supervision", "self")
        self.pose_source = t.get("poses", "posenet")
        self.stereo = bool(t.get("stereo", False))
        self.flip = float(t.get("flip", 0.0))
        self.size = tuple(t.get("size") or cfg.get("data", {}).get("size") or ())
        self.smoothness = float(cfg.get("losses", {}).get("smoothness", 1e-3))  # monodepth2
        # weight of the embodied ground-prior loss on road pixels (0: off; README "The ground prior")
        self.ground_prior, self.prior_layers = ground_prior_weights(cfg)
        self.modules = {"depth_net": TeacherDepthNet(tuple(t.get("channels", (16, 32, 64, 96, 128))))}
        if t.get("init_depth"):
            self.modules["depth_net"].start_at_depth(float(t["init_depth"]), self.min_depth, self.max_depth)
        if self.supervision == "self" and self.pose_source == "posenet":
            self.modules["pose_net"] = PoseNet(tuple(t.get("pose_channels", (16, 32, 64, 128, 128))))

    def loss(self, batch: dict, step: int):
        depth_net = self.modules["depth_net"]
        generator = step_generator(int(self.cfg.get("seed", 0)), step, batch["image"].device)
        if self.flip > 0:
            flip = torch.rand(batch["image"].shape[0], generator=generator, device=batch["image"].device) < self.flip
            batch = flip_batch(batch, flip)
        outputs = depth_net(batch["image"])
        size = batch["image"].shape[-2:]
        if self.supervision == "depth":
            valid = batch["depth"] > 0
            total = 0.0
            for s, disp in outputs.items():
                _, depth = disp_to_depth(upsample(disp, size), self.min_depth, self.max_depth)
                total = total + losses.log_depth_l1(depth, batch["depth"], valid) / len(outputs)
            return total, {"loss": float(total.detach())}
        poses = neighbour_poses(batch, self.modules.get("pose_net"), self.pose_source)
        identity = losses.identity_error([image for image, _ in source_views(batch, poses, self.stereo)], batch["image"])
        if self.ground_prior > 0:
            require_prior_layers(batch)
        total, photo_sum, ground_sum = 0.0, 0.0, 0.0
        for s, disp in outputs.items():  # monodepth2: every scale upsampled to full resolution
            _, depth = disp_to_depth(upsample(disp, size), self.min_depth, self.max_depth)
            rep = reprojection(depth, batch, poses, self.stereo)
            mask = losses.automask(rep, identity, batch["image"], generator)
            photo = losses.masked_mean(rep, mask)
            image_s = torch.nn.functional.interpolate(batch["image"], size=disp.shape[-2:], mode="area")
            smooth = losses.smoothness_loss(disp, image_s) / (2 ** s)
            term = photo + self.smoothness * smooth
            if self.ground_prior > 0:
                ground = losses.ground_prior_loss(depth, batch["prior_depth"], self.prior_layers)
                term = term + self.ground_prior * ground
                ground_sum += float(ground.detach()) / len(outputs)
            total = total + term / len(outputs)
            photo_sum += float(photo.detach()) / len(outputs)
        logs = {"loss": float(total.detach()), "photometric": photo_sum}
        if self.ground_prior > 0:
            logs["ground_prior"] = ground_sum
        return total, logs

    @torch.no_grad()
    def predict_depth(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> depth (B, 1, h, w); images not at the training size are resized in
        and the depth resized back (the student's size need not be the teacher's)."""
        h, w = image.shape[-2:]
        size = tuple(self.size) if self.size else (h, w)
        x = image if (h, w) == size else upsample(image, size)
        _, depth = disp_to_depth(self.modules["depth_net"](x)[0], self.min_depth, self.max_depth)
        return depth if (h, w) == size else upsample(depth, (h, w))

    def predict_for_validation(self, images):
        """uint8 (N, h, w, 3) -> (depth (N, h, w), "scale_depth") for ``validation.Validator``."""
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
        return self.predict_depth(x)[:, 0].cpu().numpy(), "scale_depth"

    @property
    def device(self):
        return next(self.modules["depth_net"].parameters()).device

    def export(self, folder: str | Path) -> Path:
        from .checkpoint import save_modules

        teacher = dict(self.cfg.get("teacher", {}), size=list(self.size) if self.size else None)
        return save_modules(self.modules, Path(folder) / "teacher.safetensors",
                            meta={"recipe": "ssd_teacher", "teacher": teacher})


def load_teacher(cfg: dict, device) -> SSDTeacher:
    """The frozen teacher named by ``student.teacher_checkpoint`` (a teacher.safetensors from export)."""
    from .checkpoint import load_modules

    path = cfg["student"]["teacher_checkpoint"]
    meta = load_modules(None, path, meta_only=True)
    teacher = SSDTeacher({"teacher": meta.get("teacher", {}), "seed": cfg.get("seed", 0)})
    load_modules(teacher.modules, path)
    for m in teacher.modules.values():
        m.to(device).eval().requires_grad_(False)
    return teacher


class SSDStudent:
    """The robust student. cfg keys: model (see student.build_student), student.teacher_checkpoint,
    student.poses (teacher|gt), student.output_kind (what the export's card declares: ``affine_disparity``,
    Depth Anything's convention and the default, or ``scale_depth``: the output + 1 / teacher.max_depth is
    the teacher's inverse depth, with no free shift, so the node fits one scale, as for the teacher),
    losses.teacher / .semantic / .photometric / .smoothness weights, and .ground_prior / .prior_layers: the
    embodied prior as weak supervision, as for the teacher (the road's depth does not change with the weather,
    so it holds on translated frames too). student.ema (decay, 0 = off): validation and the export use an
    exponential moving average of the weights (module ``student_ema``, checkpointed with the others)."""

    def __init__(self, cfg: dict, device="cpu"):
        self.cfg = cfg
        s = cfg.get("student", {})
        w = cfg.get("losses", {})
        self.w_teacher = float(w.get("teacher", 1.0))
        self.w_semantic = float(w.get("semantic", 0.1))
        self.w_photo = float(w.get("photometric", 1.0))
        self.w_smooth = float(w.get("smoothness", 1e-3))
        self.w_ground, self.prior_layers = ground_prior_weights(cfg)
        self.pose_source = s.get("poses", "teacher")
        self.output_kind = s.get("output_kind", "affine_disparity")
        if self.output_kind not in ("affine_disparity", "scale_depth"):
            raise ValueError(f"student.output_kind must be affine_disparity or scale_depth, got {self.output_kind!r}")
        self.modules = {"student": wrap_student(build_student(cfg.get("model", {})))}
        self.ema_decay = float(s.get("ema", 0.0))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"student.ema must be a decay in [0, 1), got {self.ema_decay}")
        if self.ema_decay > 0:
            self.modules["student_ema"] = copy.deepcopy(self.modules["student"]).requires_grad_(False)
        self.teacher = load_teacher(cfg, device)
        self.min_disp = 1.0 / self.teacher.max_depth

    def depth_from_output(self, disparity: torch.Tensor) -> torch.Tensor:
        """Student output (relative disparity, trained in the teacher's 1/depth units) -> depth."""
        return 1.0 / (disparity + self.min_disp)

    def loss(self, batch: dict, step: int):
        student = self.modules["student"]
        teacher_depth = self.teacher.predict_depth(batch["image"])         # on the CLEAN image
        disp, feats = student_forward(student, batch["translated"])        # original or translated
        depth = self.depth_from_output(disp)
        logs = {}
        total = 0.0
        pose_net = self.teacher.modules.get("pose_net")
        need_reprojection = self.w_photo > 0 or self.w_teacher > 0
        mask = None
        if need_reprojection and (pose_net is not None or self.pose_source == "gt"):
            with torch.no_grad():
                poses = neighbour_poses(batch, pose_net, "gt" if self.pose_source == "gt" else "posenet")
                rep_teacher = reprojection(teacher_depth, batch, poses)
            rep_student = reprojection(depth, batch, poses)
            generator = step_generator(int(self.cfg.get("seed", 0)), step, disp.device)
            auto = losses.automask(rep_student, [batch["prev"], batch["next"]], batch["image"], generator)
            mask = losses.teacher_mask(rep_teacher, rep_student)
            photo = losses.masked_mean(rep_student, auto)
            total = total + self.w_photo * photo
            logs["photometric"] = float(photo.detach())
            logs["teacher_mask"] = float(mask.mean())
        t_loss = losses.teacher_loss(depth, teacher_depth, mask)
        total = total + self.w_teacher * t_loss
        logs["teacher"] = float(t_loss.detach())
        if self.w_semantic > 0 and bool(batch["has_translated"].any()):
            keep = batch["has_translated"]
            with torch.no_grad():
                _, feats_original = student_forward(student, batch["image"][keep])
            sem = losses.semantic_loss([f[keep][:, 1:] for f in feats], [f[:, 1:] for f in feats_original])
            total = total + self.w_semantic * sem
            logs["semantic"] = float(sem.detach())
        if self.w_smooth > 0:
            total = total + self.w_smooth * losses.smoothness_loss(disp, batch["image"])
        if self.w_ground > 0:
            require_prior_layers(batch)
            ground = losses.ground_prior_loss(depth, batch["prior_depth"], self.prior_layers)
            total = total + self.w_ground * ground
            logs["ground_prior"] = float(ground.detach())
        logs["loss"] = float(total.detach())
        return total, logs

    def served(self):
        """The weights validation and the export use: the moving average when ``student.ema`` is on."""
        return self.modules.get("student_ema", self.modules["student"])

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """After each optimiser step: move the average towards the trained weights (the run's own order, so a
        resumed run averages the same sequence)."""
        if self.ema_decay <= 0:
            return
        from .checkpoint import unwrap

        trained, average = unwrap(self.modules["student"]), unwrap(self.modules["student_ema"])
        for a, p in zip(average.parameters(), trained.parameters()):
            a.lerp_(p, 1.0 - self.ema_decay)
        for a, b in zip(average.buffers(), trained.buffers()):
            a.copy_(b)

    @torch.no_grad()
    def predict_for_validation(self, images):
        """uint8 (N, h, w, 3) -> (values (N, h, w), kind): what the node's backend outputs with the export's card
        (disparity for ``affine_disparity``, depth for ``scale_depth``)."""
        student = self.served()
        device = next(student.parameters()).device
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).to(device)
        disp, _ = student_forward(student, x)
        raw = disp[:, 0].cpu().numpy()
        if self.output_kind == "scale_depth":  # the node's own inversion (its card's options.disparity_offset)
            from depth_prior_ros.models.preprocess import disparity_to_depth

            return disparity_to_depth(raw, self.min_disp), self.output_kind
        return np.maximum(raw, 0.0) + self.min_disp, self.output_kind

    def export(self, folder: str | Path) -> Path:
        from .export import export_student

        from .checkpoint import unwrap

        offset = self.min_disp if self.output_kind == "scale_depth" else None
        return export_student(unwrap(self.served()).model, folder, self.cfg, disparity_offset=offset)
