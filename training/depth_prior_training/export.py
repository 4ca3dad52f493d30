"""Export trained networks in the formats the node loads.

- SSD student -> ``model.safetensors`` + ``model.card.json`` (or ``card.json`` in a folder), written by
  the node's own ``depth_prior_ros.models.depth_anything.DepthAnythingNet.save_pretrained`` so the format cannot drift;
  ``create_backend("ssd_student", weights=...)`` loads it.
- ONNX -> through the node's ``depth-prior export`` machinery (``depth_prior_ros.models.export``).
"""
from __future__ import annotations

from pathlib import Path


def student_card(cfg: dict, disparity_offset: float | None = None):
    """The model card of a student trained with ``cfg`` (input size, normalisation, output kind, data).

    ``disparity_offset``: the student's output + offset is an inverse depth (``student.output_kind:
    scale_depth``); the card says ``scale_depth`` with ``options.disparity_offset`` so the node inverts it.
    """
    from depth_prior_ros.models.card import ModelCard
    from depth_prior_ros.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

    data = cfg.get("data", {})
    card_cfg = cfg.get("card", {})
    size = data.get("size")
    return ModelCard(architecture="depth_anything", variant=str(cfg.get("model", {}).get("variant", "custom")),
                     output_kind="affine_disparity" if disparity_offset is None else "scale_depth",
                     input_size=tuple(size) if size else None,
                     short_side=None if size else 518, multiple_of=14, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     training_data=card_cfg.get("training_data", f"{data.get('source', 'unknown')} "
                                                f"(conditions: {', '.join(data.get('conditions', [])) or 'none'})"),
                     source=card_cfg.get("source", "depth_prior_training ssd_student recipe"),
                     license=card_cfg.get("license", ""), notes=card_cfg.get("notes", ""),
                     options={} if disparity_offset is None else {"disparity_offset": float(disparity_offset)})


def export_student(model, folder: str | Path, cfg: dict, name: str = "model.safetensors",
                   disparity_offset: float | None = None) -> Path:
    """Write ``folder/name`` + its card (``student_card``); returns the weights path."""
    from depth_prior_ros.models.card import write_card
    from depth_prior_ros.models.depth_anything import DepthAnythingNet

    from .checkpoint import unwrap

    folder = Path(folder)
    path = DepthAnythingNet(unwrap(model)).save_pretrained(folder / name, student_card(cfg, disparity_offset))
    if name == "model.safetensors":
        # The folder form (folder/card.json) is what the node looks for when given the folder.
        from depth_prior_ros.models.card import find_card

        card = find_card(path)
        if card is not None:
            write_card(card.replace(path=None), folder / "card.json")
    return path


def export_onnx(weights: str | Path, out: str | Path, backend: str = "ssd_student", height: int | None = None,
                width: int | None = None, opset: int = 17):
    """ONNX through the node's exporter (``depth-prior export``), which checks parity against PyTorch.

    Returns the node's ExportReport; the ``.onnx`` gets its card beside it for the ``onnx`` backend.
    """
    from depth_prior_ros.models import export as node_export

    return node_export.export_onnx(backend=backend, weights=str(weights), out=str(out), height=height, width=width,
                                  opset=opset)


def export_teacher_onnx(teacher, out: str | Path, training_data: str = "") -> Path:
    """The SSD teacher's depth net as an ONNX graph + card the node's ``onnx`` backend runs (output
    ``scale_depth``: depth up to one scale, which the node aligns to the prior like any backend).

    Input: RGB in [0, 1] at the teacher's training size (card mean 0, std 1; the net normalises inside)."""
    import warnings

    import torch

    from depth_prior_ros.models.card import ModelCard, card_path_for, write_card

    from .nets import disp_to_depth

    class DepthOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = teacher.modules["depth_net"]

        def forward(self, pixels):
            return disp_to_depth(self.net(pixels)[0], teacher.min_depth, teacher.max_depth)[1]

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = DepthOnly().eval()
    h, w = teacher.size
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape ints; the backend test checks the graph
        torch.onnx.export(module, (torch.rand(1, 3, h, w),), str(out), input_names=["pixels"], output_names=["depth"],
                          opset_version=17, do_constant_folding=True, dynamo=False)
    card = ModelCard(architecture="ssd_teacher_unet", variant="depth_prior_training", output_kind="scale_depth",
                     input_size=(int(h), int(w)), multiple_of=2 ** len(module.net.channels), mean=(0.0, 0.0, 0.0),
                     std=(1.0, 1.0, 1.0), training_data=training_data or "self-supervised video",
                     source="depth_prior_training ssd_teacher recipe")
    write_card(card, card_path_for(out))
    return out
