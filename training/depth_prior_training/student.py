"""The SSD student: the Depth Anything architecture of the node's ``ssd_student`` backend.

Built through ``depth_prior_ros.models.depth_anything`` (same transformers module, same checkpoint format),
with a forward that also returns the DINOv2 feature maps the semantic loss compares.
"""
from __future__ import annotations

from depth_prior_ros.models.preprocess import IMAGENET_MEAN, IMAGENET_STD


def build_student(model_cfg: dict):
    """DepthAnythingForDepthEstimation from a config's ``model`` section.

    Keys: variant (vits|vitb|vitl), or tiny overrides hidden_size, num_hidden_layers, num_attention_heads,
    neck_hidden_sizes, fusion_hidden_size, head_hidden_size, image_size; init_weights: optional path of
    weights the node can load (HF folder, Depth-Anything .pth, safetensors + card) to start from;
    init_disparity: initial output level (bias of the last conv, so the final ReLU starts alive).
    """
    import torch

    from depth_prior_ros.models.depth_anything import DepthAnythingNet, card_for_weights, depth_anything_config

    if model_cfg.get("init_weights"):
        path = model_cfg["init_weights"]
        return DepthAnythingNet.from_pretrained(path, card_for_weights(path, model_cfg.get("variant", ""))).model.train()
    overrides = {k: model_cfg[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "neck_hidden_sizes",
                                           "fusion_hidden_size", "head_hidden_size", "image_size", "mlp_ratio",
                                           "out_indices") if k in model_cfg}
    config = depth_anything_config(model_cfg.get("variant", "vits"), **overrides)
    model = DepthAnythingNet.from_config(config).model.train()
    if "init_disparity" in model_cfg:
        with torch.no_grad():
            model.head.conv3.bias.fill_(float(model_cfg["init_disparity"]))
    return model


def normalise(image):
    """(B, 3, H, W) in [0, 1] -> ImageNet-normalised pixels (the card's normalisation)."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image - mean) / std


def _student_net_class():
    import torch

    class StudentNet(torch.nn.Module):
        """Trainable wrapper: ``model`` is the transformers DepthAnythingForDepthEstimation (what is exported).

        forward(image (B, 3, H, W) in [0, 1], H and W multiples of the patch) -> (disparity (B, 1, H, W),
        features: the DINOv2 feature maps feeding the DPT neck, each (B, 1 + N, C), CLS token first).
        Same computation as DepthAnythingForDepthEstimation.forward, split so the features come out; a
        module forward (not loose sub-module calls) so DistributedDataParallel syncs its gradients.
        """

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, image):
            inner = self.model
            pixels = normalise(image)
            patch = inner.config.patch_size
            ph, pw = pixels.shape[-2] // patch, pixels.shape[-1] // patch
            features = inner.backbone(pixel_values=pixels).feature_maps
            disparity = inner.head(inner.neck(list(features), ph, pw), ph, pw)
            return disparity.unsqueeze(1), list(features)

    return StudentNet


def wrap_student(model):
    return _student_net_class()(model)


def student_forward(net, image):
    """(disparity (B, 1, H, W), features) of a StudentNet (possibly DDP-wrapped) or a bare model."""
    if not hasattr(net, "module") and not hasattr(net, "model"):
        net = wrap_student(net)
    return net(image)
