"""Small networks of the SSD teacher: a U-Net depth net and a ResNet-free pose net (monodepth2 roles).

The depth net maps an image (B, 3, H, W) in [0, 1] to sigmoid disparities at 4 scales (full, 1/2, 1/4,
1/8), like monodepth2's decoder; ``disp_to_depth`` turns them into depth in [min_depth, max_depth].
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .warp import pose_from_axis_angle


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, padding_mode="reflect"), nn.BatchNorm2d(cout), nn.ELU())


def disp_to_depth(disp: torch.Tensor, min_depth: float, max_depth: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid output in [0, 1] -> (scaled disparity, depth) with depth in [min_depth, max_depth] (monodepth2)."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled


class TeacherDepthNet(nn.Module):
    """U-Net: encoder widths ``channels`` (each stage halves the size), decoder with skips, 4 disparity heads."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 96, 128)):
        super().__init__()
        self.channels = tuple(channels)
        enc, cin = [], 3
        for c in self.channels:
            enc.append(nn.Sequential(conv_block(cin, c, stride=2), conv_block(c, c)))
            cin = c
        self.encoder = nn.ModuleList(enc)
        dec, heads = [], {}
        for i in range(len(self.channels) - 1, -1, -1):
            skip = self.channels[i - 1] if i > 0 else 0
            out = max(self.channels[i] // 2, 16)
            dec.append(conv_block(cin + skip, out))
            if i < 4:
                heads[str(i)] = nn.Conv2d(out, 1, 3, 1, 1)
            cin = out
        self.decoder = nn.ModuleList(dec)
        self.heads = nn.ModuleDict(heads)

    def start_at_depth(self, depth: float, min_depth: float, max_depth: float) -> None:
        """Set the heads' bias so every pixel starts at ``depth`` (sigmoid 0 gives monodepth2's 2 * min_depth)."""
        level = (1.0 / depth - 1.0 / max_depth) / (1.0 / min_depth - 1.0 / max_depth)
        with torch.no_grad():
            for head in self.heads.values():
                head.bias.fill_(float(torch.logit(torch.tensor(level))))

    def forward(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """image (B, 3, H, W), H and W multiples of 2**len(channels) -> {scale: disp (B, 1, H/2^s, W/2^s)}."""
        x = (image - 0.45) / 0.225
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        outputs = {}
        n = len(self.channels)
        for k, block in enumerate(self.decoder):
            i = n - 1 - k  # this decoder level's input lives at 1/2^(i+1); its output at 1/2^i
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, skips[i - 1]], dim=1)
            x = block(x)
            if str(i) in self.heads:
                outputs[i] = torch.sigmoid(self.heads[str(i)](x))
        return outputs


class PoseNet(nn.Module):
    """Two frames (B, 6, H, W) -> 6-DoF motion as axis-angle (B, 3) and translation (B, 3)."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 128)):
        super().__init__()
        layers, cin = [], 6
        for c in channels:
            layers.append(conv_block(cin, c, stride=2))
            cin = c
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Conv2d(cin, 6, 1)

    def forward(self, frame_a: torch.Tensor, frame_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([frame_a, frame_b], dim=1)
        x = (x - 0.45) / 0.225
        out = self.head(self.encoder(x)).mean(dim=(2, 3))
        # Small outputs at initialisation (monodepth2 scales the pose by 0.01) keep early warps near identity.
        out = 0.01 * out
        return out[:, :3], out[:, 3:]



def pose_transform(pose_net, target: torch.Tensor, source: torch.Tensor, source_is_before: bool) -> torch.Tensor:
    """T_source_from_target (B, 4, 4) from a PoseNet (or its DDP wrapper: only its forward is called).

    The net always sees the two frames in time order and the result is inverted for a past source
    (monodepth2's convention)."""
    if source_is_before:
        axis_angle, translation = pose_net(source, target)
        return pose_from_axis_angle(axis_angle, translation, invert=True)
    axis_angle, translation = pose_net(target, source)
    return pose_from_axis_angle(axis_angle, translation, invert=False)
