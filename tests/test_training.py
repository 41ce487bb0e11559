import os
import warnings

import pytest
import torch
from conftest import draw, images, params

from ddpm_utils import load_toy, make_schedule, q_sample
from ddpm_utils.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from ddpm_utils.training import TrainConfig, Trainer, training_losses
from ddpm_utils.unet import MLPDenoiser, UNet, UNetConfig

TINY = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)
LINEAR = make_schedule("linear", 1000)


def _trainer(model, data, config=None, **kwargs):
    return Trainer(model, LINEAR, config or TrainConfig(), data, **kwargs)


def test_training_losses_is_algorithm_1():
    s = LINEAR
    model = MLPDenoiser(2)
    torch.nn.init.normal_(model.net[-1].weight)
    x0, t, eps, _ = draw(load_toy("moons", 100), 16, 1000, 0)
    xt = s.alpha_bars[t].sqrt()[:, None] * x0 + (1 - s.alpha_bars[t]).sqrt()[:, None] * eps
    expected = ((eps - model(xt.float(), t)) ** 2).mean(1)
    torch.testing.assert_close(training_losses(model, s, x0, t, eps), expected)
    torch.testing.assert_close(q_sample(s, x0, t, eps), xt.float())
    with pytest.raises(ValueError, match="prediction"):
        training_losses(model, s, x0, t, eps, prediction="score")


def test_one_step_is_adamw_on_the_batch_then_the_ema():
    """The Trainer's first step rebuilt by hand: the batch of `draw`, L_simple, clipping, AdamW at the warm-up's
    learning rate, and the EMA with decay min(ema_decay, 2/11)."""
    data = load_toy("moons", 200)
    cfg = TrainConfig(batch_size=32, warmup_steps=4, grad_clip=0.1, ema_decay=0.9)
    torch.manual_seed(0)
    net = MLPDenoiser(2)
    torch.nn.init.normal_(net.net[-1].weight)
    start = [p.detach().clone() for p in net.parameters()]
    trainer = _trainer(net, data, cfg)
    loss = trainer.train_step()
    by_hand = MLPDenoiser(2)
    with torch.no_grad():
        for p, p0 in zip(by_hand.parameters(), start):
            p.copy_(p0)
    x0, t, eps, _ = draw(data, 32, 1000, cfg.seed)
    expected = training_losses(by_hand, LINEAR, x0, t, eps).mean()
    expected.backward()
    torch.nn.utils.clip_grad_norm_(by_hand.parameters(), 0.1)
    torch.optim.AdamW(by_hand.parameters(), lr=cfg.lr / 4, weight_decay=0.0).step()
    assert loss == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(params(trainer.model), params(by_hand), rtol=0, atol=1e-6)
    decay = 2 / 11
    ema = torch.cat([p.reshape(-1) for p in start]) * decay + params(by_hand) * (1 - decay)
    torch.testing.assert_close(params(trainer.ema), ema, rtol=0, atol=1e-6)


def test_loss_fn_gets_the_batch_and_labels_travel_with_theirimages():
    """A custom loss_fn is called as loss_fn(net, schedule, x0, t, eps, y); each label is its own image's."""
    data = torch.linspace(-1, 1, 50)[:, None].repeat(1, 2)  # example i is (v_i, v_i)
    labels = torch.arange(50)
    calls = []

    def loss_fn(model, schedule, x0, t, eps, y):
        calls.append((model, schedule, x0, t, eps, y))
        return training_losses(model, schedule, x0, t, eps)

    trainer = _trainer(MLPDenoiser(2), data, TrainConfig(batch_size=16), labels=labels, loss_fn=loss_fn)
    trainer.train_step()
    model, schedule, x0, t, eps, y = calls[0]
    assert model is trainer.net and schedule is LINEAR
    x0_ref, t_ref, eps_ref, index = draw(data, 16, 1000, 0)
    assert torch.equal(x0, x0_ref) and torch.equal(t, t_ref) and torch.equal(eps, eps_ref)
    assert y.dtype == torch.long and torch.equal(y, index) and torch.equal(data[y], x0)
    assert calls and _trainer(MLPDenoiser(2), data).draw_batch()[3] is None  # no labels: y is None
    with pytest.raises(ValueError, match="labels must be a LongTensor of shape \\(50,\\)"):
        _trainer(MLPDenoiser(2), data, labels=labels[:10])


def test_a_class_conditional_unet_trains_on_labelled_data():
    config = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2, num_classes=3)
    data, labels = images(32), torch.arange(32) % 3
    trainer = _trainer(UNet(config), data, TrainConfig(batch_size=8, max_steps=2), labels=labels)
    trainer.train(progress=False)
    assert trainer.step == 2 and torch.isfinite(params(trainer.model)).all()


def test_the_old_argument_order_is_refused_by_name():
    with pytest.raises(TypeError, match=r"Trainer\(model, schedule, config, data\)"):
        Trainer(MLPDenoiser(2), load_toy("moons", 64), TrainConfig(), LINEAR)


def test_loss_falls_on_a_toy_set():
    torch.manual_seed(0)
    trainer = _trainer(MLPDenoiser(2), load_toy("moons", 2000), TrainConfig(max_steps=400, log_every=50, lr=3e-3))
    trainer.train(progress=False)
    losses = trainer.history["loss"]
    assert losses[-1] < 0.8 * losses[0] and len(losses) == 8


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_other_predictions_train(prediction):
    torch.manual_seed(0)
    trainer = _trainer(MLPDenoiser(2), load_toy("moons", 500), TrainConfig(max_steps=20, prediction=prediction))
    trainer.train(progress=False)
    assert torch.isfinite(params(trainer.model)).all()


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    data = images()
    cfg = TrainConfig(max_steps=8, batch_size=16, log_every=2, warmup_steps=3)
    torch.manual_seed(0)
    straight = _trainer(UNet(TINY), data, cfg).train(progress=False)
    torch.manual_seed(0)
    first = _trainer(UNet(TINY), data, cfg)
    first.train(max_steps=4, progress=False, checkpoint_path=tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", data)
    assert resumed.step == 4
    resumed.train(progress=False)
    assert resumed.step == straight.step == 8
    torch.testing.assert_close(params(resumed.model), params(straight.model), rtol=0, atol=0)
    torch.testing.assert_close(params(resumed.ema), params(straight.ema), rtol=0, atol=0)
    assert resumed.history["loss"] == straight.history["loss"]


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
    trainer = _trainer(UNet(TINY), images(), TrainConfig(max_steps=1, batch_size=8))
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
    bigger = _trainer(
        UNet(UNetConfig(base_channels=32, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2)),
        images(),
        TrainConfig(max_steps=1, batch_size=8),
    )
    with pytest.raises(ValueError, match="differs"):
        bigger.load_state_dict(load_checkpoint(good))
    state = load_checkpoint(good)
    state["model_config"] = {**state["model_config"], "base_channels": 32}
    with pytest.raises(ValueError, match="do not fit"):
        model_from_checkpoint(state)


def test_model_from_checkpoint_uses_ema(tmp_path):
    trainer = _trainer(UNet(TINY), images(), TrainConfig(max_steps=3, batch_size=8, ema_decay=0.5))
    trainer.train(progress=False, checkpoint_path=tmp_path / "c.pt")
    model, schedule, state = model_from_checkpoint(tmp_path / "c.pt")
    torch.testing.assert_close(params(model), params(trainer.ema))
    assert schedule.num_steps == 1000 and not model.training


def test_train_refuses_a_time_limit_or_interval_that_would_misfire(tmp_path):
    # before these checks: max_minutes=0 returned the untrained network (and the CLI wrote it as a checkpoint),
    # checkpoint_every=-1 wrote a checkpoint at every step, since step % -1 == 0
    trainer = _trainer(MLPDenoiser(2), load_toy("moons", 64), TrainConfig(max_steps=3, batch_size=8))
    with pytest.raises(ValueError, match="max_minutes"):
        trainer.train(max_minutes=0, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every"):
        trainer.train(checkpoint_path=tmp_path / "c.pt", checkpoint_every=-1, progress=False)
    with pytest.raises(ValueError, match="callback_every >= 1, got -5"):
        trainer.train(callback=print, callback_every=-5, progress=False)
    blocked = tmp_path / "a_file"
    blocked.write_text("")  # where the checkpoint's folder should be: refused before training, not after it
    with pytest.raises(ValueError, match=f"cannot write the checkpoint .*{blocked.name}/c.pt.*is a file, not a folder"):
        trainer.train(checkpoint_path=blocked / "c.pt", progress=False)
    with pytest.raises(ValueError, match="cannot write the checkpoint .* it is a folder"):
        trainer.train(checkpoint_path=tmp_path, progress=False)  # failed after training, replacing a folder
    for never in (None, 0):  # a callback that would never run: a forgotten callback_every, said so
        with pytest.raises(ValueError, match=f"a callback needs callback_every >= 1, got {never}"):
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
        trainer = _trainer(MLPDenoiser(2), data, config)
        assert trainer.lr_at(0.0) == pytest.approx(1e-4)  # step 0 of 10 warm-up steps: a tenth of the way
        trainer.step = 50
        assert trainer.lr_at(0.5) == pytest.approx(at_half)  # cosine: (1 + cos(pi / 2)) / 2 of the peak
        assert trainer.lr_at(1.0) == pytest.approx(at_end, abs=1e-15)


def test_resume_refuses_data_of_another_shape(tmp_path):
    config = TrainConfig(batch_size=8, max_steps=1)
    model = UNet(UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, groups=4, num_heads=2))
    trainer = _trainer(model, torch.rand(32, 1, 8, 8) * 2 - 1, config)
    trainer.train(progress=False)
    trainer.save(tmp_path / "run.pt")
    # the same network accepts 16x16 images, so only the stored shape can tell that this is the wrong data
    with pytest.raises(ValueError, match=r"trained on examples of shape \(1, 8, 8\)"):
        Trainer.resume(tmp_path / "run.pt", torch.rand(32, 1, 16, 16) * 2 - 1, max_steps=2)
    assert Trainer.resume(tmp_path / "run.pt", torch.rand(32, 1, 8, 8) * 2 - 1, max_steps=2).step == 1


def test_dropout_runs_resume_identically(tmp_path):
    """Dropout draws from torch's global generator, whose state the checkpoint also keeps."""
    data = images()
    cfg = TrainConfig(max_steps=4, batch_size=8)
    tiny = UNetConfig(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, groups=8, num_heads=2, dropout=0.3)
    torch.manual_seed(0)
    straight = _trainer(UNet(tiny), data, cfg).train(progress=False)
    torch.manual_seed(0)
    _trainer(UNet(tiny), data, cfg).train(max_steps=2, progress=False, checkpoint_path=tmp_path / "d.pt")
    torch.manual_seed(123)  # resuming restores the RNG state, whatever it is now
    resumed = Trainer.resume(tmp_path / "d.pt", data).train(progress=False)
    torch.testing.assert_close(params(resumed.model), params(straight.model), rtol=0, atol=0)


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    data = images()
    path = tmp_path / "good.pt"
    trainer = _trainer(UNet(TINY), data, TrainConfig(max_steps=4, batch_size=8))
    trainer.train(max_steps=2, progress=False, checkpoint_path=path)
    before = path.read_bytes()
    trainer.data = torch.full_like(data, float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        trainer.train(max_steps=4, progress=False, checkpoint_path=path, checkpoint_every=1)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 2


def test_trainer_refuses_empty_or_non_finite_data_and_warns_on_images_outside_the_model_range():
    with pytest.raises(ValueError, match="at least one example"):
        _trainer(MLPDenoiser(2), torch.zeros(0, 2))
    bad = images(16).clone()
    bad[5, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="only finite values"):  # was: a NaN loss at the first step
        _trainer(UNet(TINY), bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the digits, and 2-D toy data of any range: nothing to say
        _trainer(UNet(TINY), images(16))
        _trainer(MLPDenoiser(2), load_toy("moons", 64) * 10)
    unmapped = (images(16) + 1) / 2  # what an image library gives: [0, 1]
    with pytest.warns(UserWarning, match=r"images span \[\d[^,]*, 1\].*to_model_range"):
        _trainer(UNet(TINY), unmapped)
    with pytest.warns(UserWarning, match="scaled to \\[-1, 1\\]"):
        _trainer(UNet(TINY), images(16) * 4)


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
    ],
)
def test_train_config_refuses_values_that_would_train_a_wrong_network_silently(field, value):
    with pytest.raises(ValueError, match=field if field != "lr" else "lr must be a finite number"):
        TrainConfig(**{field: value})
