"""The noise-prediction networks: a UNet for images and a small MLP for 2-D toy data.

The UNet follows the DDPM reference architecture [DDPM App. B]: a sinusoidal timestep embedding
fed through an MLP; residual blocks (GroupNorm, SiLU, 3×3 convolutions, dropout) conditioned on
the timestep additively or by scale-and-shift [iDDPM §3.3]; self-attention at chosen levels and in
the middle; strided-convolution down-sampling, nearest-neighbour up-sampling; skip connections
from every down-path block; and a zero-initialised output convolution, so an untrained network
predicts ε̂ = 0. Built from `torch.nn` only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetConfig", "UNet", "MLPDenoiser", "timestep_embedding", "DDPM_CIFAR10", "DIGITS"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps. [DDPM App. B, Transformer §3.5]

    emb[:, i] = sin(t ω_i), emb[:, half + i] = cos(t ω_i),  ω_i = max_period^(-i / (half - 1)),
    i = 0..half-1, half = dim // 2 (a zero column is appended when dim is odd).
    Args: t (B,) integer or float; returns (B, dim) float32.
    """
    if t.dim() != 1:
        raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    if half < 2:
        raise ValueError(f"embedding dim must be >= 4, got {dim}")
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a UNet. Level l works at resolution size / 2^l with base_channels * channel_mults[l]."""

    in_channels: int = 1
    base_channels: int = 64  # channels at full resolution
    channel_mults: tuple[int, ...] = (1, 2)  # channel multiplier per level
    num_res_blocks: int = 2  # residual blocks per level
    attention_levels: tuple[int, ...] = (1,)  # levels (0 = full resolution) with self-attention
    mid_attention: bool = True  # self-attention between the middle residual blocks
    num_heads: int = 4  # attention heads
    dropout: float = 0.0  # dropout in the residual blocks
    groups: int = 32  # GroupNorm groups (each channel count must be divisible)
    scale_shift: bool = True  # scale-and-shift timestep conditioning [iDDPM §3.3]; False: DDPM's additive one
    out_channels: int | None = None  # defaults to in_channels
    zero_init_blocks: bool = True  # each block's last layer starts at zero, so the block starts as the identity
    num_classes: int | None = None  # class-conditional: model(x, t, y) with labels y in 0..num_classes-1
    learn_sigma: bool = False  # also output v for the variance [iDDPM §3.1]: 2 * out_channels outputs

    def __post_init__(self):
        for name in ("in_channels", "base_channels", "num_res_blocks", "num_heads", "groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("out_channels", "num_classes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive or None, got {getattr(self, name)}")
        if not self.channel_mults or any(m < 1 for m in self.channel_mults):
            raise ValueError(f"channel_mults must be a non-empty tuple of positive ints, got {self.channel_mults}")
        if any(not 0 <= lvl < len(self.channel_mults) for lvl in self.attention_levels):
            raise ValueError(f"attention_levels {self.attention_levels} must lie in [0, {len(self.channel_mults)})")
        for ch in (self.base_channels * m for m in self.channel_mults):
            if ch % self.groups or ch % self.num_heads:
                raise ValueError(
                    f"{ch} channels is not divisible by groups={self.groups} and num_heads={self.num_heads}"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        for name in ("mid_attention", "scale_shift", "zero_init_blocks", "learn_sigma"):  # "false" would be truthy
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        d = dict(d)
        for key in ("channel_mults", "attention_levels"):
            if key in d:
                d[key] = tuple(d[key])
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown UNetConfig fields {sorted(unknown)}")
        return cls(**d)


# The DDPM paper's CIFAR-10 network: 35.7M parameters. [DDPM App. B]
DDPM_CIFAR10 = UNetConfig(
    in_channels=3,
    base_channels=128,
    channel_mults=(1, 2, 2, 2),
    num_res_blocks=2,
    attention_levels=(1,),
    num_heads=1,
    dropout=0.1,
    scale_shift=False,
)

# The course's default for the 8×8 digits (0.70M parameters): two levels (8×8, 4×4), one block per level,
# attention at 4×4 and in the middle, additive conditioning. It is the same architecture as a diffusers
# UNet2DModel with block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8 (tests check the count).
# Dropout 0.1 in the residual blocks, as in DDPM's CIFAR-10 network: with 1,438 training digits the network
# starts to fit the training set's own noise after a few thousand steps, and dropout holds that off.
DIGITS = UNetConfig(
    in_channels=1,
    base_channels=32,
    channel_mults=(1, 2),
    num_res_blocks=1,
    attention_levels=(1,),
    num_heads=8,
    groups=8,
    dropout=0.1,
    scale_shift=False,
)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv → (+ timestep) → GroupNorm → SiLU → dropout → conv, plus a skip."""

    def __init__(self, in_ch, out_ch, emb_dim, dropout: float, groups: int, scale_shift: bool, zero_init=True):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        if zero_init:
            _zero(self.conv2)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        e = self.emb(emb)[:, :, None, None]  # emb is already SiLU-activated: (B, out or 2*out, 1, 1)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H·W positions, with a residual connection."""

    def __init__(self, ch: int, num_heads: int, groups: int, zero_init: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        if zero_init:
            _zero(self.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(dim=1)  # each (B, heads, HW, c/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √d) v: (B, heads, HW, c/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3×3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour, then a 3×3 convolution."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """ε_θ(x_t, t) for images (B, C, H, W) with H and W divisible by 2^(levels - 1).

    Called as `model(xt, t)` with t a (B,) tensor of 0-based timesteps; returns (B, C_out, H, W). With
    `config.num_classes`, `model(xt, t, y)` adds a label embedding to the timestep's (y None: "no label").
    """

    def __init__(self, config: UNetConfig = DIGITS):
        super().__init__()
        self.config = cfg = config
        ch0 = cfg.base_channels
        emb_dim = 4 * ch0
        self.time_mlp = nn.Sequential(nn.Linear(ch0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(cfg.in_channels, ch0, 3, padding=1)

        def block(cin, cout):
            return ResBlock(cin, cout, emb_dim, cfg.dropout, cfg.groups, cfg.scale_shift, cfg.zero_init_blocks)

        self.down = nn.ModuleList()
        skip_channels = [ch0]
        ch = ch0
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                layers = [block(ch, ch0 * mult)]
                ch = ch0 * mult
                if level in cfg.attention_levels:
                    layers.append(Attention(ch, cfg.num_heads, cfg.groups, cfg.zero_init_blocks))
                self.down.append(nn.ModuleList(layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mults) - 1:
                self.down.append(nn.ModuleList([Downsample(ch)]))
                skip_channels.append(ch)

        self.mid = nn.ModuleList([block(ch, ch)])
        if cfg.mid_attention:
            self.mid.append(Attention(ch, cfg.num_heads, cfg.groups, cfg.zero_init_blocks))
        self.mid.append(block(ch, ch))

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                layers = [block(ch + skip_channels.pop(), ch0 * mult)]
                ch = ch0 * mult
                if level in cfg.attention_levels:
                    layers.append(Attention(ch, cfg.num_heads, cfg.groups, cfg.zero_init_blocks))
                self.up.append(nn.ModuleList(layers))
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(ch)]))

        self.norm_out = nn.GroupNorm(cfg.groups, ch)
        out_channels = (cfg.out_channels or cfg.in_channels) * (2 if cfg.learn_sigma else 1)
        self.conv_out = _zero(nn.Conv2d(ch, out_channels, 3, padding=1))
        if cfg.num_classes is not None:  # one entry per class, and the last one for "no label"
            self.label_emb = nn.Embedding(cfg.num_classes + 1, emb_dim)

    def _check_input(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> None:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() != 4:
            raise ValueError(f"x must be a floating-point tensor (B, C, H, W), got {getattr(x, 'shape', x)}")
        _check_dtype(x, self.conv_in.weight)
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"this UNet takes {cfg.in_channels} input channel(s), got x with {x.shape[1]}")
        f = cfg.downsample_factor
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"H and W must be divisible by {f}, got {x.shape[2]}x{x.shape[3]}")
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
            raise ValueError(f"t must be a tensor of shape ({x.shape[0]},), got {getattr(t, 'shape', t)}")
        if y is not None and cfg.num_classes is None:
            raise ValueError("this UNet has no label embedding (UNetConfig.num_classes is None): call model(x, t)")
        if y is not None and (y.shape != t.shape or y.is_floating_point()):
            raise ValueError(f"y must be a LongTensor of shape ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")

    def embedding(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The MLP of t's sinusoidal embedding, (B, 4·base_channels), before its SiLU."""
        return self.time_mlp(timestep_embedding(t, self.config.base_channels).to(dtype))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x, t, y)
        emb = self.embedding(t, x.dtype)  # (B, 4*ch0)
        if self.config.num_classes is not None:  # y = None: every example gets the "no label" entry
            y = torch.full_like(t, self.config.num_classes) if y is None else y
            emb = emb + self.label_emb(y).to(x.dtype)
        emb = F.silu(emb)
        h = self.conv_in(x)
        skips = [h]
        for layers in self.down:
            for layer in layers:
                h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for layers in self.up:
            for layer in layers:
                if isinstance(layer, ResBlock):
                    h = layer(torch.cat([h, skips.pop()], dim=1), emb)  # (B, ch + skip_ch, H, W)
                else:
                    h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C_out, H, W); C_out = 2C with learn_sigma (ε̂, v)


def _check_dtype(x: torch.Tensor, weight: torch.Tensor) -> None:
    if x.dtype != weight.dtype:
        raise TypeError(f"x is {x.dtype} but the network's weights are {weight.dtype}: cast one to match")


class MLPDenoiser(nn.Module):
    """ε_θ(x_t, t) for low-dimensional data (B, D): an MLP on [x_t, embedding(t)]."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, emb_dim: int = 32):
        super().__init__()
        self.dim, self.emb_dim = dim, emb_dim
        layers: list[nn.Module] = [nn.Linear(dim + emb_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(_zero(nn.Linear(hidden, dim)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        _check_dtype(x, self.net[0].weight)
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
        return self.net(torch.cat([x, timestep_embedding(t, self.emb_dim).to(x.dtype)], dim=1))
