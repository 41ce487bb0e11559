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


def test_loaded_unet_runs_in_the_layout_it_was_trained_and_benchmarked_in():
    """A state dict does not keep the memory layout: loaded UNets came back contiguous, where the Trainer trains
    channels-last and benchmarks/sample_throughput.py measured channels-last (its float32 figure, 1.11x diffusers,
    was 0.96x for the model `sample` actually ran). Now they load channels-last, computing the same function."""
    import copy

    model, _ = du.load_pretrained("digits")
    weight = model.down[0][0].conv1.weight  # (C, C, 3, 3) with C > 1: the two layouts differ (conv_in's do not)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    contiguous = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x, t = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(0, 1000, 63)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), contiguous(x, t), rtol=1e-4, atol=1e-5)
    mlp_state = {"model_config": {"kind": "mlp", "dim": 2, "hidden": 8, "depth": 2, "emb_dim": 8}}
    mlp = du.checkpoint.build_model(mlp_state["model_config"])
    state = {**mlp_state, "model": mlp.state_dict(), "schedule": du.make_schedule("linear", 10).state_dict()}
    loaded, _, _ = du.model_from_checkpoint(state)
    assert all(p.is_contiguous() for p in loaded.parameters())  # 2-D models have no layout to choose
