"""Classifier-free guidance and label dropout (ddpm_utils.conditional)."""

import math

import pytest
import torch
from conftest import generator

import ddpm_utils as du
from ddpm_utils.conditional import ClassifierFreeGuidance, LabelDropoutLoss, drop_labels, null_labels

NUM_CLASSES = 10


class ToyConditional(torch.nn.Module):
    """ε(x, t, y) = x · (y + 1) + 0.001 t, a different linear map per label (∅ = 10 included); records its calls."""

    def __init__(self, out_channels_factor: int = 1):
        super().__init__()
        self.factor = out_channels_factor
        self.calls = []

    def forward(self, x, t, y):
        self.calls.append(y.clone())
        out = x * (y.to(x.dtype) + 1).reshape(-1, *[1] * (x.dim() - 1)) + 0.001 * t.to(x.dtype).reshape(-1, 1, 1, 1)
        if self.factor == 2:  # a learned-variance network: second half of the channels is v, here y / 10
            out = torch.cat([out, (y.to(x.dtype) / 10).reshape(-1, 1, 1, 1).expand_as(x)], dim=1)
        return out


def test_guided_eps_matches_hand_computation():
    x = torch.randn(4, 1, 8, 8, generator=generator(0))
    t = torch.tensor([0, 5, 500, 999])
    w = 2.0
    model = ToyConditional()
    got = ClassifierFreeGuidance(model, 7, w, num_classes=NUM_CLASSES)(x, t)
    cond = x * 8 + 0.001 * t.reshape(-1, 1, 1, 1)  # y = 7
    uncond = x * 11 + 0.001 * t.reshape(-1, 1, 1, 1)  # ∅ = 10
    torch.testing.assert_close(got, 3 * cond - 2 * uncond)


def test_guidance_per_example_labels_and_zero_weight_calls_once():
    x = torch.randn(3, 1, 8, 8, generator=generator(1))
    t = torch.tensor([1, 2, 3])
    y = torch.tensor([0, 4, 9])
    model = ToyConditional()
    out = ClassifierFreeGuidance(model, y, 0.0, num_classes=NUM_CLASSES)(x, t)
    assert len(model.calls) == 1 and model.calls[0].tolist() == [0, 4, 9]
    torch.testing.assert_close(out, x * (y + 1).reshape(-1, 1, 1, 1) + 0.001 * t.reshape(-1, 1, 1, 1))
    guided = ClassifierFreeGuidance(model, y, 0.5, num_classes=NUM_CLASSES)(x, t)
    hand = 1.5 * out - 0.5 * (x * 11 + 0.001 * t.reshape(-1, 1, 1, 1))
    torch.testing.assert_close(guided, hand)


def test_guidance_leaves_the_learned_variance_channels_conditional():
    x = torch.randn(2, 1, 8, 8, generator=generator(2))
    t = torch.tensor([10, 20])
    out = ClassifierFreeGuidance(ToyConditional(2), 3, 4.0, num_classes=NUM_CLASSES)(x, t)
    assert out.shape == (2, 2, 8, 8)
    torch.testing.assert_close(out[:, 1:], torch.full_like(x, 0.3))
    cond, uncond = x * 4 + 0.001 * t.reshape(-1, 1, 1, 1), x * 11 + 0.001 * t.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out[:, :1], 5 * cond - 4 * uncond)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm-solver"])
def test_samplers_take_the_guided_model_unchanged(sampler):
    schedule = du.make_schedule("linear", 20)
    guided = ClassifierFreeGuidance(ToyConditional(), 2, 1.0, num_classes=NUM_CLASSES)
    fn = {"ddpm": du.ddpm_sample, "ddim": du.ddim_sample, "dpm-solver": du.dpm_solver_sample}[sampler]
    kwargs = {} if sampler == "ddpm" else {"num_inference_steps": 5}
    x = fn(lambda xt, t: 0.01 * guided(xt, t), schedule, (3, 1, 8, 8), generator=generator(3), **kwargs)
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()


def test_drop_labels_rate_is_p_uncond():
    n, p = 200_000, 0.1
    y = torch.randint(0, NUM_CLASSES, (n,), generator=generator(4))
    dropped = drop_labels(y, p, NUM_CLASSES, generator(5))
    share = (dropped == NUM_CLASSES).double().mean().item()
    sd = math.sqrt(p * (1 - p) / n)  # binomial standard error, 6.7e-4
    assert abs(share - p) < 4 * sd
    kept = dropped != NUM_CLASSES
    assert torch.equal(dropped[kept], y[kept])  # the rest are untouched
    assert torch.equal(drop_labels(y, 0.0, NUM_CLASSES, generator(6)), y)
    assert (drop_labels(y, 1.0, NUM_CLASSES, generator(6)) == NUM_CLASSES).all()


def test_label_dropout_loss_feeds_dropped_labels_and_is_l_simple():
    schedule = du.make_schedule("linear", 50)
    model = ToyConditional()
    loss_fn = LabelDropoutLoss(NUM_CLASSES, p_uncond=0.3, seed=0)
    x0 = torch.randn(4000, 1, 8, 8, generator=generator(7)).clamp(-1, 1)
    t = torch.randint(0, 50, (4000,), generator=generator(8))
    eps = torch.randn(x0.shape, generator=generator(9))
    y = torch.randint(0, NUM_CLASSES, (4000,), generator=generator(10))
    losses = loss_fn(model, schedule, x0, t, eps, y)
    seen = model.calls[-1]
    share = (seen == NUM_CLASSES).double().mean().item()
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 4000)
    xt = du.q_sample(schedule, x0, t, noise=eps)
    torch.testing.assert_close(losses, du.loss_simple(model(xt, t, seen), eps))
    loss_fn(model, schedule, x0[:5], t[:5], eps[:5], None)
    assert (model.calls[-1] == NUM_CLASSES).all()  # no labels: the unconditional model


def test_null_labels_and_bad_input():
    assert null_labels(3, 10).tolist() == [10, 10, 10]
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(torch.zeros(3, dtype=torch.long), 1.5, 10)
    with pytest.raises(ValueError, match="label must lie"):
        ClassifierFreeGuidance(ToyConditional(), 11, 1.0, num_classes=10)
    with pytest.raises(ValueError, match="finite"):
        ClassifierFreeGuidance(ToyConditional(), 1, math.nan, num_classes=10)
    with pytest.raises(ValueError, match="not a class-conditional"):
        ClassifierFreeGuidance(du.UNet(du.DIGITS), 1, 1.0)
    guided = ClassifierFreeGuidance(ToyConditional(), torch.tensor([1, 2]), 1.0, num_classes=10)
    with pytest.raises(ValueError, match="shape"):
        guided(torch.zeros(3, 1, 8, 8), torch.zeros(3, dtype=torch.long))
