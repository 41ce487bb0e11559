import pytest
import torch

import ddpm_utils as du
from ddpm_utils.pretrained import pretrained_path


def test_pretrained_digits_loads_and_samples():
    model, schedule = du.load_pretrained("digits")
    assert not model.training and schedule.num_steps == 1000
    assert model.config == du.DIGITS
    x = du.ddim_sample(model, schedule, (64, 1, 8, 8), 20, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()
    report = du.metrics.evaluate_samples(x)
    assert report["classes_present"] >= 8  # recognisable digits of most classes from 64 samples
    assert report["confidence"] > 0.8


def test_pretrained_is_small_and_sampling_only():
    state = du.load_checkpoint(pretrained_path("digits"))
    assert "optimizer" not in state and pretrained_path("digits").stat().st_size < 5e6


def test_unknown_pretrained_name():
    with pytest.raises(ValueError, match="unknown pretrained model"):
        du.load_pretrained("cifar10")


def test_shipped_weights_load_strictly_into_the_unet_and_denoise():
    """The shipped state dict fits the UNet class exactly (strict=True: no missing or unexpected parameter), and the
    network predicts the noise of held-out digits far better than the best constant guess, ε̂ = 0 (error 1)."""
    state = du.load_checkpoint(pretrained_path("digits"))
    model = du.UNet(du.DIGITS)
    model.load_state_dict(state["model"], strict=True)
    schedule = du.Schedule.from_state_dict(state["schedule"])
    x0 = du.load_digits("test")[:256]
    g = torch.Generator().manual_seed(0)
    for step in (10, 100, 500, 900):
        t = torch.full((len(x0),), step)
        eps = torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            eps_pred = model.eval()(du.q_sample(schedule, x0, t, eps), t)
        error = ((eps_pred - eps) ** 2).mean().item()
        assert torch.isfinite(eps_pred).all() and error < 0.5, (step, error)
