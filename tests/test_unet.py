import dataclasses
import math
import sys
from pathlib import Path

import pytest
import torch

from ddpm_utils.unet import DDPM_CIFAR10, DIGITS, Attention, MLPDenoiser, UNet, UNetConfig, timestep_embedding

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import diffusers_cifar, diffusers_digits, flops_per_training_image  # noqa: E402  (benchmarks' own)

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_ddpm_cifar10_config_has_the_papers_35_7M_parameters():
    n = n_params(UNet(DDPM_CIFAR10))
    assert round(n / 1e6, 1) == 35.7
    pytest.importorskip("diffusers")
    assert n == n_params(diffusers_cifar())  # the peer implementation of the same architecture (used by gpu.py)


def test_matched_small_config_has_diffusers_parameter_count():
    # the diffusers network that benchmarks/ compares against has exactly the DIGITS architecture's size
    pytest.importorskip("diffusers")
    assert n_params(UNet(DIGITS)) == n_params(diffusers_digits()) == 701_345


@pytest.mark.parametrize(
    "config, peer, channels, size", [(DIGITS, diffusers_digits, 1, 8), (DDPM_CIFAR10, diffusers_cifar, 3, 32)]
)
def test_same_arithmetic_as_diffusers(config, peer, channels, size):
    # equal parameter counts could hide a different layout; equal FLOP counts (forward + backward) pin it down
    pytest.importorskip("diffusers")
    ours = flops_per_training_image(UNet(config), channels, size)
    assert ours == flops_per_training_image(peer(), channels, size)
    if config is DDPM_CIFAR10:  # the 36.3 GFLOP misses the 1.0 GFLOP of attention matmuls in fused kernels
        assert round(ours / 1e9, 1) == 37.3


@pytest.mark.parametrize(
    "channels,size,mults",
    [(1, 8, (1, 2)), (1, 28, (1, 2, 2)), (3, 32, (1, 2, 2, 2)), (1, 16, (1,)), (3, 12, (1, 2, 2))],
)
def test_unet_shapes_at_several_sizes(channels, size, mults):
    cfg = UNetConfig(
        in_channels=channels,
        base_channels=16,
        channel_mults=mults,
        num_res_blocks=1,
        groups=8,
        num_heads=2,
        attention_levels=(len(mults) - 1,),
    )
    model = UNet(cfg)
    x = torch.randn(2, channels, size, size)
    out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape
    assert (out == 0).all()  # zero-initialised output layer: ε̂ = 0 before training
    with torch.no_grad():
        for p in model.conv_out.parameters():
            p.normal_()
    out = model(x, torch.tensor([0, 999]))
    assert torch.isfinite(out).all() and out.abs().sum() > 0


def test_timestep_embedding_formula_and_diffusers():
    t = torch.tensor([0, 1, 17, 999])
    emb = timestep_embedding(t, 32)
    half = 16
    for i in range(half):
        freq = 10_000 ** (-i / (half - 1))
        # float64 reference; float32 rounding of t·ω (|t·ω| up to 999) allows ~1e-4
        torch.testing.assert_close(emb[:, i], torch.sin(t.double() * freq).float(), rtol=0, atol=1e-4)
        torch.testing.assert_close(emb[:, half + i], torch.cos(t.double() * freq).float(), rtol=0, atol=1e-4)
    pytest.importorskip("diffusers")
    from diffusers.models.embeddings import get_timestep_embedding

    ref = get_timestep_embedding(t, 32, flip_sin_to_cos=False, downscale_freq_shift=1)
    torch.testing.assert_close(emb, ref)
    assert timestep_embedding(t, 33).shape == (4, 33)


def test_attention_matches_naive_softmax():
    torch.manual_seed(1)
    attn = Attention(16, num_heads=2, groups=8)
    torch.nn.init.normal_(attn.proj.weight)
    x = torch.randn(3, 16, 4, 4)
    h = attn.norm(x)
    q, k, v = attn.qkv(h).reshape(3, 3, 2, 8, 16).unbind(1)  # each (B, heads, d, HW)
    weights = torch.softmax(torch.einsum("bhdi,bhdj->bhij", q, k) / math.sqrt(8), dim=-1)
    out = torch.einsum("bhij,bhdj->bhdi", weights, v).reshape(3, 16, 4, 4)
    torch.testing.assert_close(attn(x), x + attn.proj(out), rtol=1e-5, atol=1e-5)


def test_channels_last_gives_same_output():
    torch.manual_seed(2)
    model = UNet(TINY)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 5, 50, 500])
    ref = model(x, t)
    out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_bad_inputs_and_configs():
    model = UNet(TINY)
    t = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="1 input channel"):
        model(torch.zeros(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(torch.zeros(2, 1, 9, 9), t)
    with pytest.raises(ValueError, match="floating-point"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.long), t)
    with pytest.raises(TypeError, match="x is torch.float64 but the network's weights are torch.float32"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.float64), t)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.zeros(2, 64), t)
    with pytest.raises(ValueError, match="t must be a tensor of shape"):
        model(torch.zeros(2, 1, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="divisible by groups"):
        UNetConfig(base_channels=20, groups=8)
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(channel_mults=(1, 2), attention_levels=(2,))
    for field in ("num_heads", "groups", "num_res_blocks"):  # were: ZeroDivisionError, or a UNet without blocks
        for value in (0, -1):
            with pytest.raises(ValueError, match=f"{field} must be at least 1, got {value}"):
                UNetConfig(**{field: value})
    with pytest.raises(ValueError, match="out_channels"):
        UNetConfig(out_channels=0)
    with pytest.raises(ValueError, match="unknown UNetConfig fields"):
        UNetConfig.from_dict({"base_chanels": 3})
    with pytest.raises(TypeError, match="zero_init_blocks must be True or False, got 'false'"):
        UNetConfig.from_dict({**DIGITS.to_dict(), "zero_init_blocks": "false"})


def test_config_round_trip_and_defaults():
    assert UNetConfig.from_dict(DIGITS.to_dict()) == DIGITS
    assert DIGITS.downsample_factor == 2


def test_mlp_denoiser():
    m = MLPDenoiser(dim=2)
    out = m(torch.randn(5, 2), torch.arange(5))
    assert out.shape == (5, 2) and (out == 0).all()
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        m(torch.randn(5, 3), torch.arange(5))
    with pytest.raises(TypeError, match="x is torch.float64"):
        m(torch.randn(5, 2, dtype=torch.float64), torch.arange(5))


def test_zero_init_blocks_option():
    """zero_init_blocks=True (default): every residual block and attention starts as the identity — the whole network
    then computes conv_out(silu(norm(conv_in(x)))) plus skip convolutions; False keeps PyTorch's default
    initialisation there; the output layer starts at zero either way, so both output zeros at first. Same weights
    elsewhere for the same seed; an old checkpoint config without the field loads as True."""
    from ddpm_utils.unet import ResBlock

    cfg = dataclasses.replace(DIGITS, zero_init_blocks=False)
    torch.manual_seed(0)
    zero = UNet(DIGITS)
    torch.manual_seed(0)
    plain = UNet(cfg)
    for (name, a), (_, b) in zip(zero.named_parameters(), plain.named_parameters()):
        if name.endswith(("conv2.weight", "conv2.bias", "proj.weight", "proj.bias")):
            assert not a.any() and b.abs().sum() > 0, name
        else:
            assert torch.equal(a, b), name  # nothing else moved, and the RNG stream is the same
    assert not plain.conv_out.weight.any()
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 900])
    assert not plain(x, t).any() and not zero(x, t).any()
    block = ResBlock(16, 16, 8, 0.0, 8, False)  # identity at init: skip is the identity when channels agree
    torch.testing.assert_close(block(x.repeat(1, 16, 1, 1), torch.randn(2, 8)), x.repeat(1, 16, 1, 1))
    old = {k: v for k, v in DIGITS.to_dict().items() if k != "zero_init_blocks"}
    assert UNetConfig.from_dict(old).zero_init_blocks is True
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "config, peer, channels, size", [(DIGITS, diffusers_digits, 1, 8), (DDPM_CIFAR10, diffusers_cifar, 3, 32)]
)
def test_with_diffusers_weights_and_embedding_it_is_diffusers_network(config, peer, channels, size):
    """Peer oracle for the whole forward pass: diffusers' UNet2DModel's weights copied into ours (benchmarks'
    `ours_from_diffusers`), with diffusers' timestep embedding, give diffusers' output; with ours they do not."""
    pytest.importorskip("diffusers")
    from common import DiffusersEmbeddingUNet, call, ours_from_diffusers

    torch.manual_seed(0)
    theirs = peer().eval()
    x, t = torch.randn(3, channels, size, size), torch.tensor([0, 321, 999])
    with torch.no_grad():
        want = call(theirs, x, t)
        got = ours_from_diffusers(theirs, DiffusersEmbeddingUNet(config)).eval()(x, t)
        other = ours_from_diffusers(theirs, UNet(config)).eval()(x, t)
    assert want.abs().mean() > 0.1  # diffusers does not zero its output layer: a real output to compare
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    assert (other - want).abs().max() > 1e-2  # the embedding is the one difference left, and it shows


def test_label_embedding_adds_to_the_timestep_embedding_and_none_is_the_null_label():
    """With num_classes K the UNet has K + 1 label entries; model(x, t) equals model(x, t, y=K) (the "no label"
    entry), labels change the output, and an unconditional UNet refuses labels. The rest of the network's
    parameters keep their names, so unconditional checkpoints load unchanged."""
    config = dataclasses.replace(TINY, num_classes=3, zero_init_blocks=False)
    torch.manual_seed(0)
    model = UNet(config).eval()
    with torch.no_grad():
        model.conv_out.weight.normal_(0, 0.1)
    assert model.label_emb.weight.shape == (4, 4 * TINY.base_channels)
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        unlabelled, null = model(x, t), model(x, t, torch.full((4,), 3))
        labelled = model(x, t, torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(unlabelled, null, rtol=0, atol=0)
    assert (labelled - unlabelled).abs().max() > 1e-3
    with pytest.raises(ValueError, match="no label embedding"):
        UNet(TINY)(x, t, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="y must be a LongTensor"):
        model(x, t, torch.zeros(4))
    assert set(UNet(config).state_dict()) - set(UNet(TINY).state_dict()) == {"label_emb.weight"}


def test_learn_sigma_doubles_the_output_channels():
    for channels in (1, 3):
        model = UNet(dataclasses.replace(TINY, in_channels=channels, learn_sigma=True))
        out = model(torch.randn(2, channels, 8, 8), torch.tensor([1, 2]))
        assert out.shape == (2, 2 * channels, 8, 8)
    assert UNetConfig.from_dict(dataclasses.replace(TINY, learn_sigma=True, num_classes=10).to_dict()).num_classes == 10
    with pytest.raises(TypeError, match="learn_sigma"):
        UNetConfig(learn_sigma="yes")
    with pytest.raises(ValueError, match="num_classes"):
        UNetConfig(num_classes=0)
