"""Jasmine recipe (Wang et al., "Jasmine: Harnessing Diffusion Prior for Self-supervised Depth
Estimation", arXiv 2503.15905): fine-tune the single-step SD UNet (+ Scale-Shift GRU) self-supervised.

Per batch:
  depth part   image -> VAE latent -> UNet(cat[z, 0], t=999, task "depth") -> x0 -> VAE decode -> SSG
               -> scale-invariant depth in [0, 3], read as a disparity; photometric loss (min
               reprojection + auto-mask, a pose net), edge-aware smoothness, edge loss
  image part   ("mix-batch") the same UNet with task "image" must reconstruct the input image, which
               keeps the diffusion prior's image knowledge while the depth task is learnt
The VAE is frozen (as in Jasmine); the UNet, the Scale-Shift GRU and the pose net train.
The base model is a released Jasmine folder (unet/, vae/, gru.pth) or, for an SD2 start, any folder the
node's jasmine backend loads (``model.base``); ``model.random_init`` builds tiny random configs (tests).
Export: the released layout (unet/, vae/, gru.pth, empty_text_embed.safetensors, scheduler/, card.json).
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import losses
from .nets import PoseNet
from .ssd import neighbour_poses, reprojection, step_generator


def build_jasmine_net(model_cfg: dict):
    """The node's JasmineNet (vae, unet, gru, text embedding), trainable copy on CPU in fp32."""
    from depth_prior_ros.models import create_backend

    if model_cfg.get("base"):
        backend = create_backend("jasmine", weights=str(model_cfg["base"]), device="cpu")
    else:
        backend = create_backend("jasmine", random_init=True, device="cpu", config=model_cfg.get("config"))
    return backend.export_module()


def jasmine_forward(net, pixels: torch.Tensor, task: str):
    """pixels (B, 3, H, W) in [-1, 1] -> (depth (B, 1, H, W) in [0, 3] or None, decoded (B, 3, H, W))."""
    from depth_prior_ros.models.jasmine import task_embedding, x0_from_prediction

    latent = net.encode(pixels)
    noisy = torch.zeros_like(latent)
    kwargs = {}
    if net.uses_class_labels:
        kwargs["class_labels"] = task_embedding(task).to(pixels).expand(pixels.shape[0], -1)
    out = net.unet(torch.cat([latent, noisy], dim=1), net.timestep,
                   encoder_hidden_states=net.text_embedding.expand(pixels.shape[0], -1, -1), return_dict=False,
                   **kwargs)[0]
    decoded = net.decode(x0_from_prediction(out, noisy, net.alpha_bar, net.prediction_type))
    if task != "depth":
        return None, decoded
    if net.gru is None:
        return decoded.mean(1, keepdim=True).clamp(-1, 1) * 0.5 + 0.5, decoded
    return net.gru(latent, decoded), decoded


def _train_net_class():
    class JasmineTrainNet(torch.nn.Module):
        """Trainable wrapper: forward(pixels, task) -> jasmine_forward(net, ...); a module forward so that
        DistributedDataParallel syncs its gradients. ``net`` is the node's JasmineNet (what is exported)."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, pixels, task: str):
            return jasmine_forward(self.net, pixels, task)

    return JasmineTrainNet


class JasmineRecipe:
    """cfg keys: model.base | model.random_init + model.config, jasmine.mix_ratio (share of the batch doing
    image reconstruction), jasmine.min_depth/max_depth, losses.photometric/.smoothness/.edge/.reconstruction."""

    def __init__(self, cfg: dict, device="cpu"):
        self.cfg = cfg
        j = cfg.get("jasmine", {})
        w = cfg.get("losses", {})
        self.mix_ratio = float(j.get("mix_ratio", 0.25))
        self.min_depth, self.max_depth = float(j.get("min_depth", 0.1)), float(j.get("max_depth", 100.0))
        self.w_photo, self.w_smooth = float(w.get("photometric", 1.0)), float(w.get("smoothness", 1e-3))
        self.w_edge, self.w_rec = float(w.get("edge", 0.1)), float(w.get("reconstruction", 1.0))
        self.pose_source = j.get("poses", "posenet")
        net = build_jasmine_net(cfg.get("model", {}))
        net.vae.requires_grad_(False)   # frozen, as in Jasmine
        net.unet.requires_grad_(True)
        if net.gru is not None:
            net.gru.requires_grad_(True)
        self.modules = {"net": _train_net_class()(net)}
        if self.pose_source == "posenet":
            self.modules["pose_net"] = PoseNet(tuple(j.get("pose_channels", (16, 32, 64, 128, 128))))

    def depth_from_output(self, d: torch.Tensor) -> torch.Tensor:
        """SSG output in [0, 3] read as a normalised disparity -> depth in [min_depth, max_depth]."""
        min_disp, max_disp = 1.0 / self.max_depth, 1.0 / self.min_depth
        return 1.0 / (min_disp + (max_disp - min_disp) * (d / 3.0))

    def loss(self, batch: dict, step: int):
        net = self.modules["net"]
        image = batch["image"]
        pixels = image * 2 - 1
        n_rec = int(round(self.mix_ratio * image.shape[0]))
        n_depth = image.shape[0] - n_rec
        logs, total = {}, 0.0
        if n_depth:
            depth_batch = {k: v[:n_depth] for k, v in batch.items()}
            out, decoded = net(pixels[:n_depth], "depth")
            depth = self.depth_from_output(out)
            poses = neighbour_poses(depth_batch, self.modules.get("pose_net"), self.pose_source)
            rep = reprojection(depth, depth_batch, poses)
            generator = step_generator(int(self.cfg.get("seed", 0)), step, image.device)
            auto = losses.automask(rep, [depth_batch["prev"], depth_batch["next"]], depth_batch["image"], generator)
            photo = losses.masked_mean(rep, auto)
            smooth = losses.smoothness_loss(out, depth_batch["image"])
            # Edge loss: depth discontinuities where the clean image has edges (gray image as reference).
            edge = losses.edge_loss(out, depth_batch["image"].mean(1, keepdim=True))
            total = total + self.w_photo * photo + self.w_smooth * smooth + self.w_edge * edge
            logs.update(photometric=float(photo.detach()), edge=float(edge.detach()))
        if n_rec:
            _, recon = net(pixels[n_depth:], "image")
            rec = (recon - pixels[n_depth:]).abs().mean()
            total = total + self.w_rec * rec
            logs["reconstruction"] = float(rec.detach())
        logs["loss"] = float(total.detach())
        return total, logs

    def export(self, folder: str | Path) -> Path:
        """The released Jasmine layout, loadable by ``create_backend("jasmine", weights=folder)``."""
        from depth_prior_ros.models.card import default_card

        from .checkpoint import unwrap

        size = self.cfg.get("data", {}).get("size")
        card = default_card("jasmine").replace(
            input_size=tuple(size) if size else (320, 1024),
            training_data=self.cfg.get("card", {}).get("training_data", str(self.cfg.get("data", {}).get("source"))),
            source="depth_prior_training jasmine recipe")
        folder = unwrap(self.modules["net"]).net.save_pretrained(folder, card)
        if "pose_net" in self.modules:
            from .checkpoint import save_modules

            save_modules({"pose_net": self.modules["pose_net"]}, folder / "pose_net.safetensors")
        return folder
