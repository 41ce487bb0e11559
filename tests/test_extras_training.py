"""extras.Trainer and the loss variants: each option changes one hook of the core Trainer, and stays exact."""

import copy
import dataclasses

import pytest
import torch
from conftest import draw, images, params

from ddpm_utils import GaussianMixture, load_toy, make_schedule, q_sample, training
from ddpm_utils.checkpoint import load_checkpoint
from ddpm_utils.extras import TrainConfig, Trainer, extended_losses, min_snr_weights, random_hflip
from ddpm_utils.training import training_losses
from ddpm_utils.unet import MLPDenoiser, UNet, UNetConfig

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)
LINEAR = make_schedule("linear", 1000)


def _trainer(model, data, config=None, **kwargs):
    return Trainer(model, LINEAR, config or TrainConfig(), data, **kwargs)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weighting_is_a_clipped_x0_error(prediction):
    # whatever the network predicts, Min-SNR-γ equals min(SNR_t, γ) ‖x̂0 - x0‖², with x̂0 recovered by hand (float64)
    s = LINEAR
    model = MLPDenoiser(2)
    torch.nn.init.normal_(model.net[-1].weight)
    x0, _, eps, _ = draw(load_toy("moons", 100), 16, 1000, 1)
    t = torch.tensor([0, 1, 5, 20, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 990, 999])
    a = s.alpha_bars[t][:, None]
    xt = (a.sqrt() * x0 + (1 - a).sqrt() * eps).float()
    out = model(xt, t).double()
    x0_hat = {"eps": (xt - (1 - a).sqrt() * out) / a.sqrt(), "x0": out, "v": a.sqrt() * xt - (1 - a).sqrt() * out}
    expected = (a[:, 0] / (1 - a[:, 0])).clamp(max=5.0) * ((x0_hat[prediction] - x0) ** 2).mean(1)
    got = extended_losses(model, s, x0, t, eps, prediction=prediction, min_snr_gamma=5.0)
    torch.testing.assert_close(got.double(), expected, rtol=2e-3, atol=1e-6)
    weights = min_snr_weights(s, t, 5.0, prediction)  # the same, as weights on L_simple the caller multiplies in
    torch.testing.assert_close(training_losses(model, s, x0, t, eps, prediction=prediction) * weights, got)
    with pytest.raises(ValueError, match="min_snr_gamma"):
        TrainConfig(min_snr_gamma=0.0)


def test_posterior_target_is_l_simple_less_a_constant():
    """Rao-Blackwell: E‖f - ε‖² = E‖f - E[ε | x_t]‖² + E Var(ε | x_t) for every f, so the two losses differ
    by the same amount for any two networks (here a random MLP and the zero function), up to Monte-Carlo
    error; a posterior computed on the wrong set breaks it. E[ε | x_t] comes from GaussianMixture's score."""
    s = LINEAR
    data = load_toy("moons", 40).double()
    torch.manual_seed(0)
    net = MLPDenoiser(2).double()
    torch.nn.init.normal_(net.net[-1].weight)
    zero = lambda xt, t: torch.zeros_like(xt)  # noqa: E731
    x0, t, eps, _ = draw(data, 100_000, 1000, 3)
    with torch.no_grad():
        paired = {
            ref_name: extended_losses(net, s, x0, t, eps, reference=ref)
            - extended_losses(zero, s, x0, t, eps, reference=ref)
            for ref_name, ref in (("plain", None), ("posterior", data), ("wrong", data + 0.5))
        }
        xt = q_sample(s, x0, t, eps)
        eps_star = GaussianMixture(torch.ones(40), data, torch.zeros(40)).optimal_eps(s, xt, t)
        by_hand = ((net(xt, t) - eps_star) ** 2).mean(1) - (eps_star**2).mean(1)
    torch.testing.assert_close(paired["posterior"].double(), by_hand, rtol=1e-4, atol=1e-5)
    for name, expect_equal in (("posterior", True), ("wrong", False)):
        diff = paired["plain"] - paired[name]
        z = diff.mean().abs() / (diff.std() / len(diff) ** 0.5)
        assert (z < 4) == expect_equal, (name, z.item())
    # what goes is the target's own noise, E Var(ε | x_t) = E‖ε - E[ε | x_t]‖² per dimension
    with torch.no_grad():
        removed = (
            extended_losses(zero, s, x0, t, eps).mean() - extended_losses(zero, s, x0, t, eps, reference=data).mean()
        )
        variance = ((eps - eps_star) ** 2).mean()
    assert 0.1 < removed < 1 and removed.item() == pytest.approx(variance.item(), rel=0.02)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_trainer_uses_the_posterior_target(prediction):
    data = images(32)
    cfg = TrainConfig(max_steps=1, batch_size=8, posterior_target=True, prediction=prediction, log_every=1)
    torch.manual_seed(0)
    trainer = _trainer(UNet(TINY), data, cfg)
    before = UNet(TINY)
    before.load_state_dict(trainer.model.state_dict())
    x0, t, eps, _ = draw(data, 8, 1000, cfg.seed)
    expected = extended_losses(before.train(), LINEAR, x0, t, eps, prediction=prediction, reference=data).mean()
    plain = training_losses(before.train(), LINEAR, x0, t, eps, prediction=prediction).mean()
    trainer.train(progress=False)
    assert trainer.history["loss"][0] == pytest.approx(expected.item(), rel=1e-5)
    assert abs(expected.item() - plain.item()) > 1e-3


def test_loss_falls_with_muon_and_the_loss_is_logged_per_bucket():
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=400, log_every=50, lr=3e-3, optimizer="muon")
    trainer = _trainer(MLPDenoiser(2), load_toy("moons", 2000), cfg)
    trainer.train(progress=False)
    losses, buckets = trainer.history["loss"], torch.tensor(trainer.history["bucket_loss"])
    assert losses[-1] < 0.8 * losses[0] and buckets.shape == (8, 10)
    assert buckets[-1, 0] > buckets[-1, -1]  # small t: the hardest noise to predict


@pytest.mark.parametrize("optimizer,bf16", [("adamw", False), ("muon", False), ("adamw", True)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, optimizer, bf16):
    """With bf16 as well: the checkpoint holds the float32 weights, from which the resumed run's bfloat16 copy is
    made, so the run goes on exactly."""
    data = images()
    cfg = TrainConfig(max_steps=8, batch_size=16, log_every=2, warmup_steps=3, optimizer=optimizer, bf16=bf16)
    torch.manual_seed(0)
    straight = _trainer(UNet(TINY), data, cfg).train(progress=False)
    torch.manual_seed(0)
    first = _trainer(UNet(TINY), data, cfg)
    first.train(max_steps=4, progress=False, checkpoint_path=tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", data)
    assert resumed.step == 4 and resumed.config == cfg
    resumed.train(progress=False)
    assert resumed.step == straight.step == 8
    torch.testing.assert_close(params(resumed.model), params(straight.model), rtol=0, atol=0)
    torch.testing.assert_close(params(resumed.ema), params(straight.ema), rtol=0, atol=0)
    assert resumed.history == straight.history
    assert all(v.dtype == torch.float32 for v in load_checkpoint(tmp_path / "ck.pt")["model"].values())
    other = "muon" if optimizer == "adamw" else "adamw"
    with pytest.raises(ValueError, match=f"the checkpoint's optimizer is '{optimizer}'"):
        Trainer.resume(tmp_path / "ck.pt", data, optimizer=other)


def test_bf16_applies_the_bfloat16_copys_gradients_to_the_float32_weights():
    """One bf16 step, rebuilt by hand: a bfloat16 copy of the network, the loss of the same batch, its gradients in
    float32, clipped, then AdamW on the float32 weights. The Trainer must give exactly that update, keep the weights
    and the EMA in float32, and land near the float32 step (same batch; bfloat16 rounds the gradients)."""
    data = images()
    cfg = TrainConfig(max_steps=10, batch_size=16, warmup_steps=1, grad_clip=0.5, bf16=True)
    torch.manual_seed(0)
    net = UNet(TINY)
    for p in net.parameters():  # no zero layers: every weight gets a gradient from the first step
        torch.nn.init.normal_(p, std=0.2)
    start = copy.deepcopy(net)
    trainer = _trainer(net, data, cfg)
    loss = trainer.train_step()
    assert all(p.dtype == torch.float32 for p in [*trainer.model.parameters(), *trainer.ema.parameters()])

    low = copy.deepcopy(start).to(torch.bfloat16)
    x0, t, eps, _ = draw(data, 16, 1000, cfg.seed)
    by_hand = training_losses(lambda x, s: low(x.bfloat16(), s).float(), LINEAR, x0, t, eps).mean()
    by_hand.backward()
    expected = copy.deepcopy(start)
    for p, p_low in zip(expected.parameters(), low.parameters()):
        assert p_low.grad is not None
        p.grad = p_low.grad.float()
    torch.nn.utils.clip_grad_norm_(expected.parameters(), 0.5)
    torch.optim.AdamW(expected.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay).step()
    assert loss == pytest.approx(by_hand.item(), rel=1e-6)
    torch.testing.assert_close(params(trainer.model), params(expected), rtol=0, atol=1e-6)

    full = _trainer(copy.deepcopy(start), data, dataclasses.replace(cfg, bf16=False))
    assert full.train_step() == pytest.approx(loss, rel=2e-2)
    moved_low, moved_full = params(trainer.model) - params(start), params(full.model) - params(start)
    assert torch.nn.functional.cosine_similarity(moved_low, moved_full, dim=0) > 0.9


def test_bf16_keeps_what_the_forward_pass_updates_in_buffers():
    """A network with buffers that training updates (BatchNorm's running statistics): the bfloat16 copy updates them,
    and the float32 network must end with the same statistics as a float32 run, up to bfloat16's rounding."""

    class WithBatchNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = MLPDenoiser(2)
            self.norm = torch.nn.BatchNorm1d(2)

        def forward(self, x, t):
            return self.net(self.norm(x), t)

    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 3 + 5
    stats = {}
    for bf16 in (False, True):
        torch.manual_seed(0)
        trainer = _trainer(WithBatchNorm(), data, TrainConfig(max_steps=5, batch_size=32, bf16=bf16))
        trainer.train(progress=False)
        stats[bf16] = trainer.model.norm.running_mean.clone()
        assert trainer.model.norm.num_batches_tracked.item() == 5
    assert stats[True].dtype == torch.float32
    assert stats[False].abs().min() > 0.3  # moved from 0 towards the mean of x_t (5 steps at momentum 0.1)
    torch.testing.assert_close(stats[True], stats[False], rtol=2e-2, atol=0)


def test_bf16_is_refused_under_ddp(monkeypatch):
    monkeypatch.setattr("ddpm_utils.extras.training._dist", lambda: (0, 2))
    with pytest.raises(ValueError, match="bf16 trains in one process"):
        _trainer(UNet(TINY), images(), TrainConfig(batch_size=16, bf16=True))


def test_hflip_mirrors_about_half_the_images_and_the_trainer_trains_on_them():
    x0 = torch.randn(400, 3, 4, 5)
    out = random_hflip(x0, torch.Generator().manual_seed(0))
    same = (out == x0).flatten(1).all(1)
    mirrored = (out == x0.flip(-1)).flatten(1).all(1)
    assert (same ^ mirrored).all()  # each image as it was or mirrored, never anything else
    assert 150 < mirrored.sum() < 250  # about half: binomial(400, 1/2) has sd 10
    torch.testing.assert_close(out, random_hflip(x0, torch.Generator().manual_seed(0)))  # seeded
    with pytest.raises(ValueError, match="images"):
        random_hflip(torch.randn(8, 2), torch.Generator())
    # the trainer's batches: asymmetric images, some of them mirrored, the rest as drawn
    data = torch.arange(16 * 2 * 2 * 3, dtype=torch.float32).reshape(16, 1, 2, 6)[:, :, :, :3].contiguous()
    data = data / data.max() * 2 - 1  # in the model's range, as the Trainer expects images
    seen = []

    def recording(model, schedule, x0, t, eps, y):
        seen.append(x0.clone())
        return torch.zeros(len(x0), requires_grad=True)

    model = UNet(UNetConfig(base_channels=8, channel_mults=(1,), num_res_blocks=1, attention_levels=(), groups=4))
    config = TrainConfig(batch_size=64, max_steps=1, hflip=True, channels_last=False)
    _trainer(model, data, config, loss_fn=recording).train_step()
    batch = seen[0].contiguous()
    originals = (batch[:, None] == data[None]).flatten(2).all(2).any(1)
    mirrors = (batch[:, None] == data.flip(-1)[None]).flatten(2).all(2).any(1)
    assert (originals ^ mirrors).all() and 16 < mirrors.sum() < 48
    with pytest.raises(ValueError, match="mirrors images"):
        _trainer(MLPDenoiser(2), load_toy("moons", 64), TrainConfig(hflip=True))
    with pytest.raises(ValueError, match="exclude each other"):
        TrainConfig(hflip=True, posterior_target=True)


def test_channels_last_training_equals_the_contiguous_layout():
    data = images()
    runs = {}
    for layout in (True, False):
        torch.manual_seed(0)
        config = TrainConfig(max_steps=3, batch_size=8, channels_last=layout)
        runs[layout] = _trainer(UNet(TINY), data, config).train(progress=False)
    assert runs[True].model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(params(runs[True].model), params(runs[False].model), rtol=1e-4, atol=1e-5)


def test_bad_extras_config():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="muon_lr_ratio"):
        TrainConfig(optimizer="muon", muon_lr_ratio=-1.0)
    with pytest.raises(ValueError, match="num_buckets"):
        TrainConfig(num_buckets=0)
    with pytest.raises(TypeError, match="extras.TrainConfig"):
        Trainer(MLPDenoiser(2), LINEAR, training.TrainConfig(), load_toy("moons", 8))
