"""The shipped variants' training command runs and writes checkpoints that load (in miniature: 2 steps)."""

import pytest
import torch

import ddpm_utils as du
from ddpm_utils.levels import LevelOutput
from ddpm_utils.pretrain_variants import train_variant


@pytest.mark.parametrize("variant", ["hybrid", "hybrid-eps"])
def test_hybrid_runs_write_learned_variance_checkpoints(tmp_path, variant):
    train_variant(variant, tmp_path / "h.pt", steps=2)
    model, schedule, state = du.model_from_checkpoint(tmp_path / "h.pt")
    assert state["train_config"]["variant"] == variant
    assert isinstance(model, LevelOutput) == (variant == "hybrid")  # 17 logits per pixel, turned into ε̂
    out = model(torch.zeros(3, 1, 8, 8), torch.tensor([0, 5, 999]))
    assert out.shape == (3, 2, 8, 8) and schedule.num_steps == 1000


def test_cond_run_writes_a_conditional_checkpoint(tmp_path, monkeypatch):
    train_variant("cond", tmp_path / "c.pt", steps=2)
    monkeypatch.setitem(du.pretrained.PRETRAINED, "digits-cond", tmp_path / "c.pt")
    model, _ = du.pretrained.load_pretrained("digits-cond")
    assert model.config.num_classes == 10
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 10])
    assert model(x, t, torch.tensor([3, 10])).shape == (2, 1, 8, 8)
