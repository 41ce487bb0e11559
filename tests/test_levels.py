"""levels.LevelOutput: ε̂ from a network's logits over the pixel levels, checked against Bayes' rule computed by brute
force in float64 with torch.distributions, and in the limits where the answer is known."""

import pytest
import torch
from torch import nn
from torch.distributions import Normal

import ddpm_utils as du
from ddpm_utils.checkpoint import build_model, model_config_dict, save_checkpoint
from ddpm_utils.learned_variance import HybridLoss, ddpm_sample_learned
from ddpm_utils.levels import LevelOutput, level_network_channels

K = 17


class ConstantLogits(nn.Module):
    """A 'network' whose output is the same for every input: logits (C·K per pixel) then raw values."""

    def __init__(self, logits: torch.Tensor, raw: torch.Tensor | None = None):
        super().__init__()
        self.logits, self.raw = logits, raw  # (K,) shared by every pixel; raw a scalar or None

    def forward(self, x, t):
        b, c, h, w = x.shape
        a = (
            self.logits.to(x.dtype)
            .reshape(1, 1, -1, 1, 1)
            .expand(b, c, -1, h, w)
            .reshape(b, c * len(self.logits), h, w)
        )
        if self.raw is None:
            return a
        return torch.cat([a, torch.full((b, c, h, w), self.raw, dtype=x.dtype)], dim=1)


def brute_force_x0(schedule, xt, t, log_prior):
    """E[x_0 | x_t] pixel by pixel: for each level, log prior + log N(x_t; sqrt(ᾱ_t) ℓ_k, 1 - ᾱ_t), in float64."""
    levels = torch.linspace(-1, 1, K, dtype=torch.float64)
    out = torch.empty(xt.shape, dtype=torch.float64)
    for i in range(xt.shape[0]):
        ab = schedule.alpha_bars[t[i]].double()
        x = xt[i].double().flatten()
        log_post = torch.stack(
            [log_prior[k] + Normal(ab.sqrt() * levels[k], (1 - ab).sqrt()).log_prob(x) for k in range(K)], dim=1
        )
        out[i] = (torch.softmax(log_post, dim=1) @ levels).reshape(xt.shape[1:])
    return out


@pytest.fixture(scope="module")
def schedule():
    return du.make_schedule("linear", 1000)


@pytest.mark.parametrize("prior", ["uniform", "skewed"])
def test_x0_is_the_posterior_mean_over_the_levels(schedule, prior):
    g = torch.Generator().manual_seed(0)
    log_prior = torch.zeros(K) if prior == "uniform" else torch.randn(K, generator=g) * 2
    model = LevelOutput(ConstantLogits(log_prior), schedule, K)
    t = torch.tensor([0, 3, 10, 40, 200, 999])
    xt = torch.randn(len(t), 1, 8, 8, generator=g)
    expected = brute_force_x0(schedule, xt, t, log_prior.double())
    torch.testing.assert_close(model.x0_prediction(xt, t).double(), expected, atol=1e-5, rtol=0)
    # ε̂ is DDPM Eq. 4 solved for ε at that x̂_0
    eps = du.eps_from_x0(schedule, xt.double(), t, expected)
    torch.testing.assert_close(model(xt, t).double(), eps, atol=2e-3, rtol=1e-4)


def test_at_the_first_step_the_levels_decide_whatever_the_logits(schedule):
    # x_0 on the grid, noise sd 0.01 at t = 1 against a level spacing of 0.125: the posterior sits on the true level
    g = torch.Generator().manual_seed(1)
    x0 = du.load_digits("test")[:16]
    t = torch.zeros(16, dtype=torch.long)
    noise = torch.randn(x0.shape, generator=g).clamp(-3, 3)
    xt = du.q_sample(schedule, x0, t, noise=noise)
    wrong = torch.randn(K, generator=g) * 5  # a network that is confidently wrong
    model = LevelOutput(ConstantLogits(wrong), schedule, K)
    torch.testing.assert_close(model.x0_prediction(xt, t), x0, atol=1e-5, rtol=0)
    assert (model(xt, t) - noise).abs().max() < 1e-3


def test_at_the_last_step_the_logits_decide(schedule):
    # at t = T the likelihood is nearly flat across the levels: a confident network sets x̂_0 to its level
    logits = torch.full((K,), -30.0)
    logits[12] = 30.0
    model = LevelOutput(ConstantLogits(logits), schedule, K)
    xt = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    x0 = model.x0_prediction(xt, torch.full((4,), 999))
    torch.testing.assert_close(x0, torch.full_like(x0, -1 + 12 / 8))


def test_variance_channels_pass_through_and_x0_stays_in_range(schedule):
    model = LevelOutput(ConstantLogits(torch.zeros(K), raw=0.3), schedule, K, learn_sigma=True)
    xt = 5 * torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([0, 500, 999])
    out = model(xt, t)
    assert out.shape == (3, 2, 8, 8)
    torch.testing.assert_close(out[:, 1:], torch.full((3, 1, 8, 8), 0.3))
    x0 = model.x0_prediction(xt, t)
    assert x0.min() >= -1 and x0.max() <= 1


def test_bad_input_is_refused_by_name(schedule):
    with pytest.raises(ValueError, match="num_levels"):
        LevelOutput(ConstantLogits(torch.zeros(K)), schedule, 1)
    with pytest.raises(TypeError, match="schedule must be a Schedule"):
        LevelOutput(ConstantLogits(torch.zeros(K)), None, K)
    model = LevelOutput(ConstantLogits(torch.zeros(K)), schedule, K, learn_sigma=True)  # the net gives no raw values
    with pytest.raises(ValueError, match="18 expected"):
        model(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="t must lie"):
        LevelOutput(ConstantLogits(torch.zeros(K)), schedule, K)(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1000]))
    with pytest.raises(ValueError, match="needs its schedule"):
        build_model({"kind": "levels", "num_levels": K, "learn_sigma": False, "net": {"kind": "unet"}})


def test_a_level_unet_trains_on_l_hybrid_saves_and_loads(schedule, tmp_path):
    import dataclasses

    config = dataclasses.replace(du.unet.DIGITS, base_channels=16, groups=4, num_heads=4)
    net = du.UNet(dataclasses.replace(config, out_channels=level_network_channels(1, K, True)))
    model = LevelOutput(net, schedule, K, learn_sigma=True)
    x0 = du.load_digits("train")[:8]
    t = torch.tensor([0, 0, 1, 2, 10, 100, 500, 999])
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    loss = HybridLoss(num_levels=K)(model, schedule, x0, t, eps).mean()
    loss.backward()  # the smallest t included: no inf/NaN from the sharp likelihood term
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    path = save_checkpoint(
        {
            "step": 0,
            "model_config": model_config_dict(model),
            "schedule": schedule.state_dict(),
            "model": model.state_dict(),
        },
        tmp_path / "levels.pt",
    )
    loaded, loaded_schedule, _ = du.model_from_checkpoint(path)
    assert isinstance(loaded, LevelOutput)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x0, t), model.eval()(x0, t))
        x = ddpm_sample_learned(loaded, loaded_schedule, (2, 1, 8, 8), 5, generator=torch.Generator().manual_seed(5))
    assert x.shape == (2, 1, 8, 8) and torch.isfinite(x).all()


def test_the_shipped_hybrid_model_is_a_level_model():
    model, schedule = du.load_pretrained("digits-hybrid")
    assert isinstance(model, LevelOutput) and model.learn_sigma and model.num_levels == du.DIGITS_LEVELS
    eps_model, _ = du.load_pretrained("digits-hybrid-eps")
    assert eps_model.config.learn_sigma
