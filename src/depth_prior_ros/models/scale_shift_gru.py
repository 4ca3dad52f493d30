"""Jasmine's Scale-Shift GRU: turns the VAE-decoded depth into scale-invariant depth in [0, 3].

From the paper (and the layer facts of the released code, so that its ``gru.pth`` keys load):

- hidden state: ``tanh(project(decoded))``, a 1x1 conv 3 -> 64 of the decoded 3-channel image;
- initial depth: one channel (``link_mode='first'``) or the channel mean (``'mean'``) of the decoded
  image, clamped to [-1, 1] and mapped to [0, 1];
- context: the image latent (4 x H/8 x W/8) through four convs with three 2x bilinear upsamplings;
- each of 2 iterations: two learned queries cross-attend (4 heads) over the hidden state and two small
  MLPs read a global scale and shift; depth <- depth * scale + shift; a separable conv GRU
  (1x5 then 5x1) updates the hidden state from [depth features, context]; a conv head adds a tanh
  residual; depth is clamped to [0, 3].

Module names mirror the released state dict: ``depth_encoder``, ``context_encoder``, ``project``,
``d_head``, ``gru``, ``ss_head`` (``scale_query``, ``shift_query``, ``attn.in_proj_weight``, ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LINK_MODES = ("first", "mean")


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W), bilinear, half-pixel centres."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class DepthFeatures(nn.Module):
    """Depth (B, 1, H, W) -> features (B, out, H, W): a 7x7 conv then three 3x3 convs, all ReLU."""

    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.convd1 = nn.Conv2d(1, hidden, 7, padding=3)
        self.convd2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.convd3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.convd4 = nn.Conv2d(hidden, out, 3, padding=1)

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.convd1(depth))
        x = F.relu(self.convd2(x))
        x = F.relu(self.convd3(x))
        return F.relu(self.convd4(x))


class LatentContext(nn.Module):
    """Image latent (B, 4, H/8, W/8) -> context (B, out, H, W): convs with a 2x upsampling between each."""

    def __init__(self, hidden: int, out: int, latent_channels: int = 4):
        super().__init__()
        self.convc1 = nn.Conv2d(latent_channels, hidden, 7, padding=3)
        self.convc2 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.convc3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.convc4 = nn.Conv2d(hidden, out, 3, padding=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = upsample2x(F.relu(self.convc1(latent)))
        x = upsample2x(F.relu(self.convc2(x)))
        x = upsample2x(F.relu(self.convc3(x)))
        return F.relu(self.convc4(x))


class SeparableConvGRU(nn.Module):
    """GRU cell with a horizontal (1x5) then a vertical (5x1) pass; h (B, hid, H, W), x (B, inp, H, W)."""

    def __init__(self, hidden: int, inputs: int):
        super().__init__()
        both = hidden + inputs
        self.convz1 = nn.Conv2d(both, hidden, (1, 5), padding=(0, 2))
        self.convr1 = nn.Conv2d(both, hidden, (1, 5), padding=(0, 2))
        self.convq1 = nn.Conv2d(both, hidden, (1, 5), padding=(0, 2))
        self.convz2 = nn.Conv2d(both, hidden, (5, 1), padding=(2, 0))
        self.convr2 = nn.Conv2d(both, hidden, (5, 1), padding=(2, 0))
        self.convq2 = nn.Conv2d(both, hidden, (5, 1), padding=(2, 0))

    @staticmethod
    def _step(h, x, conv_z, conv_r, conv_q):
        hx = torch.cat([h, x], dim=1)
        update = torch.sigmoid(conv_z(hx))
        reset = torch.sigmoid(conv_r(hx))
        candidate = torch.tanh(conv_q(torch.cat([reset * h, x], dim=1)))
        return (1 - update) * h + update * candidate

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        h = self._step(h, x, self.convz1, self.convr1, self.convq1)
        return self._step(h, x, self.convz2, self.convr2, self.convq2)


class DepthResidualHead(nn.Module):
    """Hidden state (B, C, H, W) -> tanh depth update (B, 1, H, W)."""

    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, 1, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv2(F.relu(self.conv1(h))))


class QueryCrossAttention(nn.Module):
    """Multi-head attention of a few learned queries over a feature map's pixels.

    Parameters are laid out like ``torch.nn.MultiheadAttention`` (``in_proj_weight`` (3C, C) stacking
    query/key/value projections, ``in_proj_bias`` (3C), ``out_proj``), so the released weights load; the
    computation is written out so that it exports to ONNX as plain matmuls.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """queries (B, Q, C), tokens (B, N, C) -> attended (B, Q, C)."""
        b, q_len, dim = queries.shape
        w_q, w_k, w_v = self.in_proj_weight.chunk(3, dim=0)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3, dim=0)
        head_dim = dim // self.heads

        def split(x):  # (B, L, C) -> (B, heads, L, head_dim)
            return x.reshape(b, -1, self.heads, head_dim).transpose(1, 2)

        q = split(F.linear(queries, w_q, b_q))
        k = split(F.linear(tokens, w_k, b_k))
        v = split(F.linear(tokens, w_v, b_v))
        weights = torch.softmax(q @ k.transpose(-1, -2) / head_dim ** 0.5, dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(b, q_len, dim)
        return self.out_proj(attended)


class ScaleShiftHead(nn.Module):
    """Two learned queries (scale, shift) attend over the hidden state -> per-image scale and shift (B, 1)."""

    def __init__(self, hidden: int = 64, heads: int = 4):
        super().__init__()
        self.scale_query = nn.Parameter(torch.randn(1, hidden) * 0.02 + 0.541)
        self.shift_query = nn.Parameter(torch.randn(1, hidden) * 0.01)
        self.attn = QueryCrossAttention(hidden, heads)
        self.scale_head = self._mlp(hidden, init_bias=0.541)
        self.shift_head = self._mlp(hidden, init_bias=0.0)

    @staticmethod
    def _mlp(hidden: int, init_bias: float) -> nn.Sequential:
        mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        nn.init.constant_(mlp[2].bias, init_bias)
        return mlp

    def forward(self, hidden_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden_state (B, C, H, W) -> scale (B, 1), shift (B, 1)."""
        b = hidden_state.shape[0]
        tokens = hidden_state.flatten(2).transpose(1, 2)  # (B, HW, C)
        queries = torch.cat([self.scale_query, self.shift_query], dim=0).unsqueeze(0).expand(b, -1, -1)
        attended = self.attn(queries, tokens)  # (B, 2, C)
        return self.scale_head(attended[:, 0]), self.shift_head(attended[:, 1])


class ScaleShiftGRU(nn.Module):
    """Decoded depth image + image latent -> scale-invariant depth (B, 1, H, W) in [0, 3]."""

    def __init__(self, hidden: int = 64, iterations: int = 2, heads: int = 4, link_mode: str = "first",
                 latent_channels: int = 4, decoded_channels: int = 3):
        super().__init__()
        if link_mode not in LINK_MODES:
            raise ValueError(f"link_mode must be one of {', '.join(LINK_MODES)}, got '{link_mode}'")
        self.iterations = iterations
        self.link_mode = link_mode
        half = hidden // 2
        self.depth_encoder = DepthFeatures(hidden=half, out=half)
        self.context_encoder = LatentContext(hidden=half, out=half, latent_channels=latent_channels)
        self.project = nn.Conv2d(decoded_channels, hidden, 1)
        self.d_head = DepthResidualHead(inputs=hidden, hidden=hidden)
        self.gru = SeparableConvGRU(hidden=hidden, inputs=hidden)
        self.ss_head = ScaleShiftHead(hidden=hidden, heads=heads)

    def initial_depth(self, decoded: torch.Tensor) -> torch.Tensor:
        """Decoded image (B, 3, H, W) in about [-1, 1] -> depth (B, 1, H, W) in [0, 1]."""
        depth = decoded[:, :1] if self.link_mode == "first" else decoded.mean(dim=1, keepdim=True)
        return depth.clamp(-1.0, 1.0) * 0.5 + 0.5

    def forward(self, latent: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """latent (B, 4, H/8, W/8), decoded (B, 3, H, W) -> depth (B, 1, H, W) in [0, 3]."""
        depth = self.initial_depth(decoded)
        hidden = torch.tanh(self.project(decoded))
        context = self.context_encoder(latent)
        for _ in range(self.iterations):
            scale, shift = self.ss_head(hidden)
            depth = depth * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1)
            hidden = self.gru(hidden, torch.cat([self.depth_encoder(depth), context], dim=1))
            depth = (depth + self.d_head(hidden)).clamp(0.0, 3.0)
        return depth
