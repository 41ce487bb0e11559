"""Sample-quality measures for the 8×8 digits, each with a floor and a ceiling to read it against.

* `DigitsClassifier`: a small CNN the package trains deterministically in seconds on the digits'
  train split; the weights it produced ship in `ddpm_utils/checkpoints/digits_classifier.pt`, because on
  another CPU the same training differs in the last bits and the scores by a few tenths. Its 64-d
  penultimate features define
* `frechet_distance` between two sets of features (FID's formula, on our features: "FD_digits").
  Floor: real train digits against held-out test digits (`reference_scores`); ceiling: samples
  from a single Gaussian fitted to the training pixels — any model should beat that easily.
* `class_mix`, and the class-matched FD in `evaluate_samples`: FD_digits mixes two things, how good the digits of each
  class are and how often each class comes. The test split's class mix differs from the training
  split's by chance (14% twos against 9%, by the classifier's labels), which makes up about half of the
  plain floor and most of its spread. `evaluate_samples` therefore also reports the FD with the samples
  reweighted to the test split's mix ('fd_class_matched', read against its own, tighter floor) and how
  far the samples' mix is from the training digits' ('class_mix_tv', read against real digits').
* `nearest_neighbour_check`: distances of samples to their nearest training image, compared with
  the same distances for held-out digits; a model that copies its training set has many samples
  far closer than real unseen digits ever are.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import non_finite_rows, share_beyond
from .analytic import GaussianData
from .checkpoint import atomic_save, describe_load_error
from .data import load_digits

__all__ = [
    "DigitsClassifier",
    "train_digits_classifier",
    "digits_classifier",
    "export_digits_classifier",
    "frechet_distance",
    "digits_features",
    "class_mix",
    "gaussian_fit_samples",
    "reference_scores",
    "nearest_neighbour_check",
    "evaluate_samples",
    "summarise_reports",
]


class DigitsClassifier(nn.Module):
    """conv(32) → conv(64) → pool → 64-d features → 10 logits, for (B, 1, 8, 8) in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, 64)
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(f"the digits classifier takes (B, 1, 8, 8) images, got {tuple(x.shape)}")
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 64, 4, 4)
        return F.relu(self.fc(h.flatten(1)))  # (B, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_digits_classifier(epochs: int = 30, seed: int = 0) -> DigitsClassifier:
    """Train the classifier on the train split with light shift augmentation (seeded)."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DigitsClassifier()
    x, y = load_digits("train", return_labels=True)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    with torch.enable_grad():  # also when first asked for inside no_grad (`_features`, with a cold cache)
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), 64):
                idx = order[i : i + 64]
                xb = x[idx]
                shift = torch.randint(-1, 2, (2,), generator=g).tolist()  # ±1 pixel, background-padded
                xb = torch.roll(F.pad(xb, (1, 1, 1, 1), value=-1.0), shifts=shift, dims=(2, 3))[:, :, 1:-1, 1:-1]
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval().requires_grad_(False)


def _cache_dir() -> Path:
    return Path(os.environ.get("DDPM_CACHE", Path.home() / ".cache" / "ddpm-from-scratch"))


SHIPPED_CLASSIFIER = Path(__file__).resolve().parent / "checkpoints" / "digits_classifier.pt"


def export_digits_classifier(path: str | os.PathLike = SHIPPED_CLASSIFIER) -> Path:
    """Train the classifier (`train_digits_classifier()`) and write its weights to `path`, atomically.

    This is how `ddpm_utils/checkpoints/digits_classifier.pt` was made. Retrained on another CPU the weights differ in
    the last bits (other float kernels), and FD_digits with them by a few tenths — hence one shipped copy.
    """
    return atomic_save(train_digits_classifier().state_dict(), Path(path))


@functools.lru_cache(maxsize=1)
def digits_classifier() -> DigitsClassifier:
    """The classifier behind FD_digits: the shipped weights, so that every machine measures alike.

    `ddpm_utils/checkpoints/digits_classifier.pt` holds what `train_digits_classifier()` produced (see
    `export_digits_classifier`; installed copies of the package carry it too); a corrupt file is a clear error.
    Without that file (deleted) the classifier is trained here, with a warning, and cached on disk per torch version.
    """
    model = DigitsClassifier()
    if SHIPPED_CLASSIFIER.is_file():
        try:
            model.load_state_dict(torch.load(SHIPPED_CLASSIFIER, weights_only=True))
        except Exception as e:
            raise RuntimeError(
                f"{SHIPPED_CLASSIFIER} is unreadable ({describe_load_error(e)}); restore it from git, or delete it "
                "to train the classifier on this machine (FD_digits then differs from the README's by a few tenths)"
            ) from None
        return model.eval().requires_grad_(False)
    key = hashlib.sha1(f"v1-{torch.__version__}".encode()).hexdigest()[:10]
    path = _cache_dir() / f"digits_classifier_{key}.pt"
    warnings.warn(
        f"{SHIPPED_CLASSIFIER} is missing: FD_digits uses a classifier trained on this machine (cached as {path}), "
        "so its scores differ from the README's by a few tenths; restore the file from git to measure alike",
        stacklevel=2,
    )
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval().requires_grad_(False)
        except Exception:  # a corrupt cache is simply rebuilt
            pass
    model = train_digits_classifier()
    try:
        atomic_save(model.state_dict(), path)
    except OSError:  # e.g. a read-only cache directory: keep it in memory only
        pass
    return model


def _features(x: torch.Tensor) -> torch.Tensor:
    """The classifier's features of images on any device (the metrics run on the CPU, where the classifier is)."""
    with torch.no_grad():
        return digits_classifier().features(x.detach().cpu().float().clamp(-1, 1)).double()


def digits_features(images: torch.Tensor) -> torch.Tensor:
    """(N, 64) float64: the shipped classifier's features of digits (N, 1, 8, 8) in [-1, 1], on any device —
    what FD_digits compares. `frechet_distance(digits_features(a), digits_features(b))` scores any two sets, e.g.
    samples against the training digits (to choose a setting without looking at the test split)."""
    _check_samples(images)
    return _features(images)


def frechet_distance(feats1: torch.Tensor, feats2: torch.Tensor, weights1: torch.Tensor | None = None) -> float:
    """‖μ1 - μ2‖² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2}) between Gaussians fitted to two feature sets (N, F).

    The trace term uses tr((Σ1 Σ2)^{1/2}) = Σ sqrt(eig(Σ1^{1/2} Σ2 Σ1^{1/2})), in float64.
    `weights1` (N1,), non-negative, weighs the first set's points in its mean and covariance (the
    covariance with the usual unbiased correction for such weights; equal weights give the plain FD).
    """
    if feats1.dim() != 2 or feats2.dim() != 2 or feats1.shape[1] != feats2.shape[1]:
        raise ValueError(
            f"feature sets must be (N, F) with equal F, got {tuple(feats1.shape)} and {tuple(feats2.shape)}"
        )
    if min(len(feats1), len(feats2)) < 2:
        raise ValueError("need at least 2 samples in each set")
    f1, f2 = feats1.double(), feats2.double()
    if weights1 is None:
        mu1, s1 = f1.mean(0), torch.cov(f1.T)
    else:
        w = torch.as_tensor(weights1, dtype=torch.float64)
        if w.shape != (len(f1),) or not torch.isfinite(w).all() or (w < 0).any() or (w > 0).sum() < 2:
            raise ValueError(
                f"weights1 must be ({len(f1)},), finite, non-negative, with at least 2 positive, "
                f"got shape {tuple(w.shape)}"
            )
        mu1, s1 = (w[:, None] * f1).sum(0) / w.sum(), torch.cov(f1.T, aweights=w)
    mu2, s2 = f2.mean(0), torch.cov(f2.T)
    evals, evecs = torch.linalg.eigh(s1)
    sqrt_s1 = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    middle = torch.linalg.eigvalsh(sqrt_s1 @ s2 @ sqrt_s1)
    trace_sqrt = middle.clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * trace_sqrt)


def _labels(feats: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return digits_classifier().head(feats.float()).argmax(1)


def _mix(feats: torch.Tensor) -> torch.Tensor:
    return torch.bincount(_labels(feats), minlength=10).double() / len(feats)


def class_mix(images: torch.Tensor) -> torch.Tensor:
    """(10,) float64: the fraction of the digits (N, 1, 8, 8) that the classifier puts in each class."""
    return _mix(_features(images))


def _class_matched_weights(feats: torch.Tensor, target_mix: torch.Tensor) -> torch.Tensor | None:
    """(N,) weights that give a feature set the class mix `target_mix` (10,): target / own share of each
    point's class. None when a class the target needs is absent from the set (no weights can supply it)."""
    labels = _labels(feats)
    own = torch.bincount(labels, minlength=10).double() / len(feats)
    target = torch.as_tensor(target_mix, dtype=torch.float64)
    if ((own == 0) & (target > 0)).any():
        return None
    return (target / own.clamp(min=1e-300))[labels]


def _class_matched_fd(feats: torch.Tensor, test_feats: torch.Tensor) -> float:
    weights = _class_matched_weights(feats, _mix(test_feats))
    return float("nan") if weights is None else frechet_distance(feats, test_feats, weights)


def _class_mix_tv(feats: torch.Tensor, train_feats: torch.Tensor) -> float:
    """Total variation distance between two class mixes: the share of one set that would have to change class."""
    return 0.5 * (_mix(feats) - _mix(train_feats)).abs().sum().item()


def gaussian_fit_samples(n: int, seed: int = 0) -> torch.Tensor:
    """n images from one Gaussian fitted to the training pixels (mean and full covariance), in [-1, 1]."""
    fit = GaussianData.fit(load_digits("train"))
    mean, cov = fit.mean, fit.covariance + 1e-6 * torch.eye(64, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 64, generator=g, dtype=torch.float64)
    return (mean + z @ torch.linalg.cholesky(cov).T).clamp(-1, 1).float().reshape(n, 1, 8, 8)


@functools.lru_cache(maxsize=4)
def reference_scores(n: int = 1000, repeats: int = 10, bootstrap: int = 100) -> dict[str, float]:
    """The floor and the ceiling of FD_digits against the test split, for n images (n <= 1438).

    Floor: n real training digits (never seen by the test split) vs the test digits, averaged over
    `repeats` random subsets; 'real_vs_real_sd' is its spread across those subsets (about 4 at
    n = 300, 1.4 at n = 1000). The subsets overlap (1,000 of the same 1,438 digits), so that spread
    understates how far a score moves between two *independent* sets of n images:
    'sampling_sd' estimates that, as the spread over `bootstrap` draws of n training digits with
    replacement — about 2 at n = 1000 and 5 at n = 300, close to what a model's score spreads
    over sampling seeds (1–3 measured at n = 1000). Read a difference between two single scores against
    √2 · sampling_sd, or average over seeds (`python -m ddpm_utils evaluate --repeats`).
    Ceiling: n draws from a Gaussian fitted to the training pixels vs the test digits.
    'class_matched', 'class_matched_sd' and 'class_matched_sampling_sd': the same for the FD with the
    real digits reweighted to the test split's class mix (`_class_matched_weights`; NaN when some subset
    lacks a class). 'class_mix_tv': the total variation distance between the class mix of n real digits
    (drawn with replacement) and the whole training split's, on average — what chance alone gives.
    FD falls as n grows, so compare a model's score only with references of the same n.
    """
    if not 2 <= n <= len(load_digits("train")):
        raise ValueError(f"n must lie in [2, {len(load_digits('train'))}], got {n}")
    if repeats < 1 or bootstrap < 2:
        raise ValueError(f"repeats must be at least 1 and bootstrap at least 2, got {repeats} and {bootstrap}")
    test_feats = _features(load_digits("test"))
    train_feats = _features(load_digits("train"))
    g = torch.Generator().manual_seed(1)
    subsets = [train_feats[torch.randperm(len(train_feats), generator=g)[:n]] for _ in range(repeats)]
    draws = [train_feats[torch.randint(0, len(train_feats), (n,), generator=g)] for _ in range(bootstrap)]
    floors = torch.tensor([frechet_distance(f, test_feats) for f in subsets])
    matched = torch.tensor([_class_matched_fd(f, test_feats) for f in subsets])
    draw_fds = torch.tensor([frechet_distance(f, test_feats) for f in draws])
    draw_matched = torch.tensor([_class_matched_fd(f, test_feats) for f in draws])
    return {
        "real_vs_real": floors.mean().item(),
        "real_vs_real_sd": floors.std().item() if repeats > 1 else float("nan"),
        "sampling_sd": draw_fds.std().item(),
        "class_matched": matched.mean().item(),
        "class_matched_sd": matched.std().item() if repeats > 1 else float("nan"),
        "class_matched_sampling_sd": draw_matched.std().item(),
        "class_mix_tv": sum(_class_mix_tv(f, train_feats) for f in draws) / bootstrap,
        "gaussian_fit": frechet_distance(_features(gaussian_fit_samples(n)), test_feats),
    }


def summarise_reports(reports: list[dict]) -> dict:
    """One report from several `evaluate_samples` reports of independent sample sets (e.g. seeds):
    every number averaged, plus 'fd_sd' (the spread of FD across the sets) and 'fd_each', and the
    same for 'fd_class_matched' where the reports have it."""
    if not reports:
        raise ValueError("summarise_reports needs at least one report")
    summary = {key: sum(r[key] for r in reports) / len(reports) for key in reports[0]}
    for key in ("fd", "fd_class_matched"):
        if key in reports[0]:
            values = torch.tensor([r[key] for r in reports], dtype=torch.float64)
            summary[f"{key}_sd"] = values.std().item() if len(reports) > 1 else float("nan")
            summary[f"{key}_each"] = values.tolist()
    return summary


def _check_samples(samples: torch.Tensor) -> None:
    """Refuse samples with NaN or infinite values (a diverged sampler: the FD's linear algebra would fail on them
    with a message about eigenvalues); warn when many pixels lie well outside [-1, 1], which the metrics clamp to
    (samples mapped back to [0, 16] or [0, 1], or a sampler far off course: the scores would not say which)."""
    if not isinstance(samples, torch.Tensor) or not samples.is_floating_point():
        raise TypeError(f"samples must be a floating-point tensor, got {getattr(samples, 'dtype', type(samples))}")
    bad = non_finite_rows(samples)
    if bad:
        raise ValueError(
            f"{bad} of {len(samples)} samples contain NaN or infinite values: the sampler diverged "
            "(a network trained too briefly or with too high a learning rate, or a first step that amplifies the "
            "network's error: see the sampler's warning)"
        )
    low, high = samples.min().item(), samples.max().item()
    outside = share_beyond(samples.detach(), 1.5)
    if low >= 0:  # digits in [-1, 1] have a background of -1
        warnings.warn(
            f"the samples span [{low:.3g}, {high:.3g}], without a negative value: the digits metrics take images in "
            "the model's range [-1, 1] (background -1) and clamp to it; map [0, max] images there first "
            "(ddpm_utils.data.to_model_range)",
            stacklevel=3,
        )
    elif outside > 0.01:
        warnings.warn(
            f"{outside:.0%} of the pixels lie outside [-1.5, 1.5] (the samples span [{low:.3g}, {high:.3g}]): the "
            "digits metrics clamp them to [-1, 1], so the scores say only that the sampler is off course (a network "
            "trained too briefly, or a sampler that amplifies its error)",
            stacklevel=3,
        )


def nearest_neighbour_check(samples: torch.Tensor, quantile: float = 0.05) -> dict[str, float]:
    """How close samples lie to their nearest training image, against held-out digits (L2 in [-1, 1]).

    Returns the median nearest-neighbour distance of the samples and of the test digits, and the
    fraction of samples closer to the training set than `quantile` of the test digits are
    ('too_close'); about `quantile` is normal, much more means copying.
    """
    _check_samples(samples)
    return _nearest_neighbour(samples, quantile)


def _nearest_neighbour(samples: torch.Tensor, quantile: float) -> dict[str, float]:
    if samples.shape[1:] != (1, 8, 8):
        raise ValueError(f"the copying check compares (B, 1, 8, 8) digits, got {tuple(samples.shape)}")
    train = load_digits("train").reshape(-1, 64).double()
    test = load_digits("test").reshape(-1, 64).double()
    s = samples.detach().cpu().reshape(len(samples), -1).double()  # samples from any device
    d_samples = torch.cdist(s, train).min(1).values
    d_test = torch.cdist(test, train).min(1).values
    threshold = torch.quantile(d_test, quantile)
    return {
        "median_nn_samples": d_samples.median().item(),
        "median_nn_test": d_test.median().item(),
        "too_close": (d_samples < threshold).double().mean().item(),
        "expected_too_close": quantile,
    }


def evaluate_samples(samples: torch.Tensor) -> dict[str, float]:
    """FD_digits against the test split, with the floor and ceiling for the same number of images
    and the score's own sampling noise ('fd_sampling_sd', see `reference_scores`), the classes the
    classifier sees (every class should appear), its mean confidence, and the nearest-neighbour check.

    Split by what it measures: 'fd_class_matched' is the FD with the samples reweighted to the test
    split's class mix — how good the digits of each class are — read against 'floor_class_matched'
    (± 'floor_class_matched_sd' over subsets; one score's own noise 'fd_class_matched_sampling_sd');
    NaN when a class is missing, and noisy when one has only a few samples (their weights are large).
    'class_mix_tv' is how far the samples' class mix is from the
    training digits' (0: the same; 1: no class in common), read against 'class_mix_tv_expected',
    what n real digits give by chance."""
    _check_samples(samples)
    feats = _features(samples)
    test_feats, train_feats = _features(load_digits("test")), _features(load_digits("train"))
    with torch.no_grad():
        probs = torch.softmax(digits_classifier().head(feats.float()), dim=1)
    mix = _mix(feats)  # the same labels as probs.argmax(1)
    ref = reference_scores(min(len(samples), len(load_digits("train"))))
    return {
        "fd": frechet_distance(feats, test_feats),
        "floor_real_vs_real": ref["real_vs_real"],
        "floor_sd": ref["real_vs_real_sd"],
        "fd_sampling_sd": ref["sampling_sd"],
        "ceiling_gaussian_fit": ref["gaussian_fit"],
        "fd_class_matched": _class_matched_fd(feats, test_feats),
        "floor_class_matched": ref["class_matched"],
        "floor_class_matched_sd": ref["class_matched_sd"],
        "fd_class_matched_sampling_sd": ref["class_matched_sampling_sd"],
        "class_mix_tv": _class_mix_tv(feats, train_feats),
        "class_mix_tv_expected": ref["class_mix_tv"],
        "classes_present": int((mix > 0).sum()),
        "min_class_fraction": mix.min().item(),
        "confidence": probs.max(1).values.mean().item(),
        **_nearest_neighbour(samples, 0.05),
    }
