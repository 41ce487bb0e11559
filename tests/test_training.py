import copy
import dataclasses
import os
import warnings

import pytest
import torch

from ddpm_utils import GaussianMixture, load_toy, make_schedule, q_sample
from ddpm_utils.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from ddpm_utils.training import TrainConfig, Trainer, draw_batch, training_losses
from ddpm_utils.unet import MLPDenoiser, UNet, UNetConfig

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)


def _images(n=64, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_training_losses_is_algorithm_1():
    s = make_schedule("linear", 1000)
    model = MLPDenoiser(2)
    torch.nn.init.normal_(model.net[-1].weight)
    x0, t, noise = draw_batch(load_toy("moons", 100), 16, 1000, torch.Generator().manual_seed(0))
    xt = s.alpha_bars[t].sqrt()[:, None] * x0 + (1 - s.alpha_bars[t]).sqrt()[:, None] * noise
    expected = ((noise - model(xt.float(), t)) ** 2).mean(1)
    torch.testing.assert_close(training_losses(model, s, x0, t, noise), expected)
    torch.testing.assert_close(q_sample(s, x0, t, noise=noise), xt.float())


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_min_snr_weighting_is_a_clipped_x0_error(prediction):
    # whatever the network predicts, Min-SNR-γ equals min(SNR_t, γ) ‖x̂0 - x0‖², with x̂0 recovered by hand (float64)
    s = make_schedule("linear", 1000)
    model = MLPDenoiser(2)
    torch.nn.init.normal_(model.net[-1].weight)
    x0, _, noise = draw_batch(load_toy("moons", 100), 16, 1000, torch.Generator().manual_seed(1))
    t = torch.tensor([0, 1, 5, 20, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 990, 999])
    a = s.alpha_bars[t][:, None]
    xt = (a.sqrt() * x0 + (1 - a).sqrt() * noise).float()
    out = model(xt, t).double()
    x0_hat = {
        "eps": (xt - (1 - a).sqrt() * out) / a.sqrt(),
        "x0": out,
        "v": a.sqrt() * xt - (1 - a).sqrt() * out,
    }[prediction]
    expected = (a[:, 0] / (1 - a[:, 0])).clamp(max=5.0) * ((x0_hat - x0) ** 2).mean(1)
    got = training_losses(model, s, x0, t, noise, prediction, min_snr_gamma=5.0)
    torch.testing.assert_close(got.double(), expected, rtol=2e-3, atol=1e-6)
    with pytest.raises(ValueError, match="min_snr_gamma"):
        TrainConfig(min_snr_gamma=0.0)


def test_posterior_target_is_l_simple_less_a_constant():
    """Rao-Blackwell: E‖f - ε‖² = E‖f - E[ε | x_t]‖² + E Var(ε | x_t) for every f, so the two losses differ
    by the same amount for any two networks (here a random MLP and the zero function), up to Monte-Carlo
    error; a posterior computed on the wrong set breaks it. E[ε | x_t] comes from GaussianMixture's score."""
    s = make_schedule("linear", 1000)
    data = load_toy("moons", 40).double()
    torch.manual_seed(0)
    net = MLPDenoiser(2).double()
    torch.nn.init.normal_(net.net[-1].weight)
    zero = lambda xt, t: torch.zeros_like(xt)  # noqa: E731
    x0, t, noise = draw_batch(data, 100_000, 1000, torch.Generator().manual_seed(3))
    with torch.no_grad():
        paired = {
            ref_name: training_losses(net, s, x0, t, noise, reference=ref)
            - training_losses(zero, s, x0, t, noise, reference=ref)
            for ref_name, ref in (("plain", None), ("posterior", data), ("wrong", data + 0.5))
        }
        xt = q_sample(s, x0, t, noise)
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
            training_losses(zero, s, x0, t, noise).mean()
            - training_losses(zero, s, x0, t, noise, reference=data).mean()
        )
        variance = ((noise - eps_star) ** 2).mean()
    assert 0.1 < removed < 1 and removed.item() == pytest.approx(variance.item(), rel=0.02)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_trainer_uses_the_posterior_target(prediction):
    data = _images(32)
    cfg = TrainConfig(max_steps=1, batch_size=8, posterior_target=True, prediction=prediction, log_every=1)
    torch.manual_seed(0)
    trainer = Trainer(UNet(TINY), data, cfg)
    before = UNet(TINY).to(memory_format=torch.channels_last)
    before.load_state_dict(trainer.model.state_dict())
    x0, t, noise = draw_batch(data, 8, 1000, torch.Generator().manual_seed(cfg.seed))
    expected = training_losses(before.train(), trainer.schedule, x0, t, noise, prediction, reference=data).mean()
    plain = training_losses(before.train(), trainer.schedule, x0, t, noise, prediction).mean()
    trainer.train(progress=False)
    assert trainer.history["loss"][0] == pytest.approx(expected.item(), rel=1e-5)
    assert abs(expected.item() - plain.item()) > 1e-3
    with pytest.raises(ValueError, match="prediction"):
        training_losses(before, trainer.schedule, x0, t, noise, "score", reference=data)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_loss_falls_on_a_toy_set(optimizer):
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=400, log_every=50, lr=3e-3, optimizer=optimizer)
    trainer = Trainer(MLPDenoiser(2), load_toy("moons", 2000), cfg)
    trainer.train(progress=False)
    losses = trainer.history["loss"]
    assert losses[-1] < 0.8 * losses[0]
    assert len(trainer.history["bucket_loss"][-1]) == 10


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_other_predictions_train(prediction):
    torch.manual_seed(0)
    trainer = Trainer(MLPDenoiser(2), load_toy("moons", 500), TrainConfig(max_steps=20, prediction=prediction))
    trainer.train(progress=False)
    assert torch.isfinite(_params(trainer.model)).all()


@pytest.mark.parametrize("optimizer,bf16", [("adamw", False), ("muon", False), ("adamw", True)])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, optimizer, bf16):
    """With bf16 as well: the checkpoint holds the float32 weights, from which the resumed run's bfloat16 copy is
    made, so the run goes on exactly."""
    data = _images()
    cfg = TrainConfig(max_steps=8, batch_size=16, log_every=2, warmup_steps=3, optimizer=optimizer, bf16=bf16)
    torch.manual_seed(0)
    straight = Trainer(UNet(TINY), data, cfg).train(progress=False)

    torch.manual_seed(0)
    first = Trainer(UNet(TINY), data, cfg)
    first.train(max_steps=4, progress=False, checkpoint_path=tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", data)
    assert resumed.step == 4
    resumed.train(progress=False)
    assert resumed.step == straight.step == 8
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)
    torch.testing.assert_close(_params(resumed.ema), _params(straight.ema), rtol=0, atol=0)
    assert resumed.history["loss"] == straight.history["loss"]
    assert all(v.dtype == torch.float32 for v in load_checkpoint(tmp_path / "ck.pt")["model"].values())
    other = "muon" if optimizer == "adamw" else "adamw"
    with pytest.raises(ValueError, match=f"optimizer state is '{optimizer}'"):
        Trainer.resume(tmp_path / "ck.pt", data, optimizer=other)


def test_bf16_applies_the_bfloat16_copys_gradients_to_the_float32_weights():
    """One bf16 step, rebuilt by hand: a bfloat16 copy of the network, the loss of the same batch, its gradients in
    float32, clipped, then AdamW on the float32 weights. The Trainer must give exactly that update, keep the weights
    and the EMA in float32, and land near the float32 step (same batch; bfloat16 rounds the gradients)."""
    data = _images()
    cfg = TrainConfig(max_steps=10, batch_size=16, warmup_steps=1, grad_clip=0.5, bf16=True)
    torch.manual_seed(0)
    net = UNet(TINY)
    for p in net.parameters():  # no zero layers: every weight gets a gradient from the first step
        torch.nn.init.normal_(p, std=0.2)
    start = copy.deepcopy(net)
    trainer = Trainer(net, data, cfg)
    loss = trainer.train_step()
    assert all(p.dtype == torch.float32 for p in [*trainer.model.parameters(), *trainer.ema.parameters()])

    low = copy.deepcopy(start).to(torch.bfloat16)
    x0, t, noise = draw_batch(data, 16, cfg.num_steps, torch.Generator().manual_seed(cfg.seed))
    schedule = make_schedule(cfg.schedule, cfg.num_steps)
    by_hand = training_losses(lambda x, s: low(x.bfloat16(), s).float(), schedule, x0, t, noise).mean()
    by_hand.backward()
    expected = copy.deepcopy(start)
    for p, p_low in zip(expected.parameters(), low.parameters()):
        assert p_low.grad is not None
        p.grad = p_low.grad.float()
    torch.nn.utils.clip_grad_norm_(expected.parameters(), 0.5)
    torch.optim.AdamW(expected.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay).step()
    assert loss == pytest.approx(by_hand.item(), rel=1e-6)
    torch.testing.assert_close(_params(trainer.model), _params(expected), rtol=0, atol=1e-6)

    full = Trainer(copy.deepcopy(start), data, dataclasses.replace(cfg, bf16=False))
    assert full.train_step() == pytest.approx(loss, rel=2e-2)
    moved_low, moved_full = _params(trainer.model) - _params(start), _params(full.model) - _params(start)
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
        trainer = Trainer(WithBatchNorm(), data, TrainConfig(max_steps=5, batch_size=32, bf16=bf16)).train(
            progress=False
        )
        stats[bf16] = trainer.model.norm.running_mean.clone()
        assert trainer.model.norm.num_batches_tracked.item() == 5
    assert stats[True].dtype == torch.float32
    assert stats[False].abs().min() > 0.3  # moved from 0 towards the mean of x_t (5 steps at momentum 0.1)
    torch.testing.assert_close(stats[True], stats[False], rtol=2e-2, atol=0)


def test_bf16_is_refused_under_ddp(monkeypatch):
    monkeypatch.setattr("ddpm_utils.training._dist", lambda: (0, 2))
    with pytest.raises(ValueError, match="bf16 trains a bfloat16 copy"):
        Trainer(UNet(TINY), _images(), TrainConfig(batch_size=16, bf16=True))


def test_dropout_runs_resume_identically(tmp_path):
    """Dropout draws from torch's global generator, whose state the checkpoint also keeps."""
    data = _images()
    cfg = TrainConfig(max_steps=4, batch_size=8)
    tiny = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2, dropout=0.3)
    torch.manual_seed(0)
    straight = Trainer(UNet(tiny), data, cfg).train(progress=False)
    torch.manual_seed(0)
    Trainer(UNet(tiny), data, cfg).train(max_steps=2, progress=False, checkpoint_path=tmp_path / "d.pt")
    torch.manual_seed(123)  # resuming restores the RNG state, whatever it is now
    resumed = Trainer.resume(tmp_path / "d.pt", data).train(progress=False)
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    data = _images()
    path = tmp_path / "good.pt"
    trainer = Trainer(UNet(TINY), data, TrainConfig(max_steps=4, batch_size=8))
    trainer.train(max_steps=2, progress=False, checkpoint_path=path)
    before = path.read_bytes()
    trainer.data = torch.full_like(data, float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        trainer.train(max_steps=4, progress=False, checkpoint_path=path, checkpoint_every=1)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 2


def test_checkpoint_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"step": 1, "model_config": {}, "schedule": {}, "model": {}}, path)
    before = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2, "model_config": {}, "schedule": {}, "model": {}}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary file left behind


def test_bad_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="is a folder; give the checkpoint file inside it"):
        load_checkpoint(tmp_path)  # `runs/` for `runs/digits.pt`: it exists, so "does not exist" would mislead
    trainer = Trainer(UNet(TINY), _images(), TrainConfig(max_steps=1, batch_size=8))
    good = tmp_path / "good.pt"
    trainer.save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="is corrupt") as err:
        load_checkpoint(garbage)
    # torch's own advice for a refused file is to load it with weights_only=False (running its code): not passed on
    assert "Unsupported operand" in str(err.value) and "False" not in str(err.value), err.value
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": FORMAT, "f": pytest.approx}, unsafe)  # a function: pickled as a global to import
    with pytest.raises(ValueError, match="holds objects other than tensors") as err:
        load_checkpoint(unsafe)
    assert "approx" in str(err.value) and "False" not in str(err.value), err.value
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a ddpm-from-scratch/1 checkpoint"):
        load_checkpoint(other)
    # a checkpoint from an incompatible config
    bigger = Trainer(
        UNet(UNetConfig(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)),
        _images(),
        TrainConfig(max_steps=1, batch_size=8),
    )
    with pytest.raises(ValueError, match="differs"):
        bigger.load_state_dict(load_checkpoint(good))
    state = load_checkpoint(good)
    state["model_config"] = {**state["model_config"], "base_channels": 32}
    with pytest.raises(ValueError, match="do not fit"):
        model_from_checkpoint(state)


def test_model_from_checkpoint_uses_ema(tmp_path):
    trainer = Trainer(UNet(TINY), _images(), TrainConfig(max_steps=3, batch_size=8, ema_decay=0.5))
    trainer.train(progress=False, checkpoint_path=tmp_path / "c.pt")
    model, schedule, state = model_from_checkpoint(tmp_path / "c.pt")
    torch.testing.assert_close(_params(model), _params(trainer.ema))
    assert schedule.num_steps == 1000 and not model.training


def test_bad_train_config_and_data():
    with pytest.raises(ValueError, match="prediction"):
        TrainConfig(prediction="score")
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="muon_lr_ratio"):
        TrainConfig(optimizer="muon", muon_lr_ratio=-1.0)
    with pytest.raises(ValueError, match="floating-point"):
        Trainer(UNet(TINY), torch.zeros(10, 1, 8, 8, dtype=torch.long))


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", float("nan")),
        ("lr", float("inf")),
        ("lr", -1e-3),
        ("ema_decay", 1.5),
        ("ema_decay", -0.1),
        ("grad_clip", -1.0),
        ("weight_decay", -0.01),
        ("warmup_steps", -1),
        ("max_minutes", 0.0),
        ("max_minutes", float("nan")),
        ("log_every", 0),
        ("num_buckets", 0),
    ],
)
def test_train_config_refuses_values_that_would_train_a_wrong_network_silently(field, value):
    with pytest.raises(ValueError, match=field if field != "lr" else "lr a finite number"):
        TrainConfig(**{field: value})


def test_trainer_refuses_empty_or_non_finite_data_and_warns_on_images_outside_the_model_range():
    with pytest.raises(ValueError, match="at least one example"):
        Trainer(MLPDenoiser(2), torch.zeros(0, 2))
    bad = _images(16).clone()
    bad[5, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="only finite values"):  # was: a NaN loss at the first step
        Trainer(UNet(TINY), bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the digits, and 2-D toy data of any range: nothing to say
        Trainer(UNet(TINY), _images(16))
        Trainer(MLPDenoiser(2), load_toy("moons", 64) * 10)
    unmapped = (_images(16) + 1) / 2  # what an image library gives: [0, 1]
    with pytest.warns(UserWarning, match=r"images span \[\d[^,]*, 1\].*to_model_range"):
        Trainer(UNet(TINY), unmapped)
    with pytest.warns(UserWarning, match="scaled to \\[-1, 1\\]"):
        Trainer(UNet(TINY), _images(16) * 4)


def test_train_refuses_a_time_limit_or_interval_that_would_misfire(tmp_path):
    # before these checks: max_minutes=0 returned the untrained network (and the CLI wrote it as a checkpoint),
    # checkpoint_every=-1 wrote a checkpoint at every step, since step % -1 == 0
    trainer = Trainer(MLPDenoiser(2), load_toy("moons", 64), TrainConfig(max_steps=3, batch_size=8))
    with pytest.raises(ValueError, match="max_minutes"):
        trainer.train(max_minutes=0, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every"):
        trainer.train(checkpoint_path=tmp_path / "c.pt", checkpoint_every=-1, progress=False)
    with pytest.raises(ValueError, match="callback_every"):
        trainer.train(callback=print, callback_every=-5, progress=False)
    blocked = tmp_path / "a_file"
    blocked.write_text("")  # where the checkpoint's folder should be: refused before training, not after it
    with pytest.raises(ValueError, match=f"cannot write the checkpoint .*{blocked.name}/c.pt.*is a file, not a folder"):
        trainer.train(checkpoint_path=blocked / "c.pt", progress=False)
    with pytest.raises(ValueError, match="cannot write the checkpoint .* it is a folder"):
        trainer.train(checkpoint_path=tmp_path, progress=False)  # failed after training, replacing a folder
    for never in (None, 0):  # a callback that would never run: a forgotten callback_every, said so
        with pytest.raises(ValueError, match=f"a callback needs callback_every >= 1.*with {never} it never runs"):
            trainer.train(callback=print, callback_every=never, progress=False)
    with pytest.raises(ValueError, match=r"max_steps=4 lies outside \[0, config.max_steps=3\]"):
        trainer.train(max_steps=4, progress=False)  # was: 3 steps, without a word
    assert trainer.step == 0 and not (tmp_path / "c.pt").exists()
    trainer.train(checkpoint_path=tmp_path / "c.pt", checkpoint_every=0, progress=False)  # 0: only at the end
    assert trainer.step == 3 and (tmp_path / "c.pt").exists()
    for ok in (0.0, 1.0):  # the ends of the EMA's range and no clipping stay allowed
        TrainConfig(ema_decay=ok, grad_clip=0.0, warmup_steps=0)
    TrainConfig(grad_clip=None)


def test_lr_warms_up_then_decays_to_zero_or_holds():
    data = load_toy("moons", 64)
    for schedule, at_half, at_end in (("cosine", 5e-4, 0.0), ("constant", 1e-3, 1e-3)):
        config = TrainConfig(lr=1e-3, warmup_steps=10, lr_schedule=schedule, max_steps=100)
        trainer = Trainer(MLPDenoiser(2), data, config)
        assert trainer.lr_at(0.0) == pytest.approx(1e-4)  # step 0 of 10 warm-up steps: a tenth of the way
        trainer.step = 50
        assert trainer.lr_at(0.5) == pytest.approx(at_half)  # cosine: (1 + cos(pi / 2)) / 2 of the peak
        assert trainer.lr_at(1.0) == pytest.approx(at_end, abs=1e-15)


def test_hflip_mirrors_about_half_the_images_and_the_trainer_trains_on_them(monkeypatch):
    from ddpm_utils import training
    from ddpm_utils.training import random_hflip

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

    def recording(model, schedule, x0, *args, **kwargs):
        seen.append(x0.clone())
        return torch.zeros(len(x0), requires_grad=True)

    monkeypatch.setattr(training, "training_losses", recording)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1,), num_res_blocks=1, attention_levels=(), groups=4))
    config = TrainConfig(batch_size=64, max_steps=1, hflip=True, channels_last=False)
    Trainer(model, data, config).train_step()
    batch = seen[0].contiguous()
    originals = (batch[:, None] == data[None]).flatten(2).all(2).any(1)
    mirrors = (batch[:, None] == data.flip(-1)[None]).flatten(2).all(2).any(1)
    assert (originals ^ mirrors).all() and 16 < mirrors.sum() < 48
    with pytest.raises(ValueError, match="mirrors images"):
        Trainer(MLPDenoiser(2), load_toy("moons", 64), TrainConfig(hflip=True))
    with pytest.raises(ValueError, match="exclude each other"):
        TrainConfig(hflip=True, posterior_target=True)


def test_resume_refuses_data_of_another_shape(tmp_path):
    config = TrainConfig(batch_size=8, max_steps=1)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, groups=4, num_heads=2))
    trainer = Trainer(model, torch.rand(32, 1, 8, 8) * 2 - 1, config)
    trainer.train(progress=False)
    trainer.save(tmp_path / "run.pt")
    # the same network accepts 16x16 images, so only the stored shape can tell that this is the wrong data
    with pytest.raises(ValueError, match=r"trained on examples of shape \(1, 8, 8\)"):
        Trainer.resume(tmp_path / "run.pt", torch.rand(32, 1, 16, 16) * 2 - 1, max_steps=2)
    assert Trainer.resume(tmp_path / "run.pt", torch.rand(32, 1, 8, 8) * 2 - 1, max_steps=2).step == 1
