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
