import pytest
import torch

from ddpm_utils import DIGITS, UNet
from ddpm_utils.extras.optim import NS_COEFFICIENTS, MuonAdamW, muon_parameter_groups, newton_schulz


@pytest.mark.parametrize("shape", [(16, 40), (40, 16), (32, 288)])
def test_newton_schulz_keeps_singular_vectors_and_maps_each_singular_value(shape):
    """NS is an odd matrix polynomial, so it acts on each singular value alone: U^T NS(G) V must be
    diagonal, with the scalar recurrence x <- a x + b x^3 + c x^5 applied to s / ||G||_F on it (float64 SVD)."""
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    out = newton_schulz(g)
    inner = u.T @ out @ vh.T  # (k, k)
    x = s / g.norm()
    a, b, c = NS_COEFFICIENTS
    for _ in range(5):
        x = a * x + b * x**3 + c * x**5
    torch.testing.assert_close(inner, torch.diag(x), rtol=0, atol=1e-10)
    assert x.min() > 0.6 and x.max() < 1.25  # close to the polar factor U V^T, as intended
    assert (out - u @ vh).norm() < 0.35 * (u @ vh).norm()


def _run(make_optimizer, weight, grads):
    """Start from `weight`, feed `grads` in turn; `make_optimizer(param)` builds the optimiser."""
    w = weight.clone().requires_grad_()
    opt = make_optimizer(w)
    for g in grads:
        w.grad = g.clone()
        opt.step()
    return w.detach()


def _muon(lr=0.01, **kwargs):
    return lambda w: MuonAdamW([dict(params=[w], muon=True)], lr=lr, **kwargs)


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon arrived after PyTorch 2.4")
def test_muon_half_matches_torch_muon():
    """A peer implementation: torch.optim.Muon (Nesterov, RMS matched to AdamW) on a weight matrix.
    Torch orthogonalises in bfloat16, we in float32, hence the 3% tolerance on the update."""
    torch.manual_seed(0)
    w0, grads = torch.randn(24, 40), [torch.randn(24, 40) for _ in range(4)]
    ours = _run(_muon(weight_decay=0.1, muon_lr_ratio=1.0), w0, grads)
    ref = _run(lambda w: torch.optim.Muon([w], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"), w0, grads)
    assert (ours - ref).norm() < 0.03 * (ref - w0).norm()
    # muon_lr_ratio scales the step (no weight decay, one step)
    one, three = (_run(_muon(muon_lr_ratio=r), w0, grads[:1]) for r in (1.0, 3.0))
    torch.testing.assert_close(three - w0, 3 * (one - w0))


def test_convolution_filter_is_stepped_as_its_matrix():
    torch.manual_seed(0)
    w0, grads = torch.randn(8, 4, 3, 3), [torch.randn(8, 4, 3, 3) for _ in range(3)]
    filt = _run(_muon(), w0, grads)
    flat = _run(_muon(), w0.reshape(8, 36), [g.reshape(8, 36) for g in grads])  # (C_out, C_in k k)
    torch.testing.assert_close(filt.reshape(8, 36), flat)


def test_adamw_half_matches_torch_adamw():
    torch.manual_seed(0)
    w0, grads = torch.randn(5, 3), [torch.randn(5, 3) for _ in range(6)]
    ours = _run(lambda w: MuonAdamW([dict(params=[w], muon=False)], lr=0.01, weight_decay=0.05), w0, grads)
    ref = _run(lambda w: torch.optim.AdamW([w], lr=0.01, weight_decay=0.05), w0, grads)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)


def test_parameter_groups_of_the_unet():
    model = UNet(DIGITS)
    hidden, rest = (g["params"] for g in muon_parameter_groups(model))
    assert len(hidden) + len(rest) == len(list(model.parameters()))
    ids = {id(p) for p in hidden}
    assert all(p.dim() >= 2 for p in hidden)
    assert not ids & {id(p) for p in [*model.conv_in.parameters(), *model.conv_out.parameters()]}
    assert id(model.mid[0].conv1.weight) in ids and id(model.mid[0].conv1.bias) not in ids
    assert sum(p.numel() for p in hidden) > 0.95 * sum(p.numel() for p in model.parameters())


def test_bad_optimizer_settings():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        MuonAdamW([dict(params=[torch.zeros(4, requires_grad=True)], muon=True)])
    with pytest.raises(ValueError, match="momentum"):
        MuonAdamW([dict(params=[torch.zeros(4, 4, requires_grad=True)], muon=True)], momentum=1.0)
    with pytest.raises(ValueError, match="betas"):
        MuonAdamW([dict(params=[torch.zeros(4, 4, requires_grad=True)], muon=False)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        MuonAdamW([dict(params=[torch.zeros(4, 4, requires_grad=True)], muon=True)], weight_decay=-0.1)
    with pytest.raises(ValueError, match="positive"):
        MuonAdamW([dict(params=[torch.zeros(4, 4, requires_grad=True)], muon=True)], muon_lr_ratio=0)
    with pytest.raises(ValueError, match="matrix"):
        newton_schulz(torch.zeros(2, 3, 4))
