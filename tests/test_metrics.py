import warnings

import pytest
import torch

from ddpm_utils import metrics
from ddpm_utils.data import load_digits
from ddpm_utils.metrics import (
    class_mix,
    digits_classifier,
    digits_features,
    evaluate_samples,
    frechet_distance,
    gaussian_fit_samples,
    nearest_neighbour_check,
    reference_scores,
    summarise_reports,
)


def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 6, generator=g, dtype=torch.float64)
    b = (
        torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
        + 0.3
    )
    s1, s2 = torch.cov(a.T).numpy(), torch.cov(b.T).numpy()
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum().item() + (s1.trace() + s2.trace() - 2 * covmean.trace())
    assert abs(frechet_distance(a, b) - expected) < 1e-6 * max(1.0, expected)
    assert abs(frechet_distance(a, a)) < 1e-6


def test_weighted_frechet_distance_equals_the_replicated_set():
    """Integer weights k_i act as k_i copies of point i (exactly for the mean; for the covariance up to the
    unbiased correction, (Σk - Σk²/Σk) against (Σk - 1), a 0.1% difference here); equal weights give the
    plain FD exactly; bad weights are refused."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(800, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    b = torch.randn(300, 5, generator=g, dtype=torch.float64) + 0.5
    k = torch.randint(1, 4, (800,), generator=g)
    replicated = frechet_distance(a.repeat_interleave(k, dim=0), b)
    assert frechet_distance(a, b, k.double()) == pytest.approx(replicated, rel=2e-3)
    assert frechet_distance(a, b, torch.full((800,), 0.3)) == pytest.approx(frechet_distance(a, b), rel=1e-12)
    assert abs(frechet_distance(a, b) - replicated) > 0.01 * replicated  # the weights matter here
    for bad in (torch.ones(799), -torch.ones(800), torch.full((800,), float("nan")), torch.zeros(800)):
        with pytest.raises(ValueError, match="weights1"):
            frechet_distance(a, b, bad)


def test_class_matched_score_separates_class_mix_from_digit_quality():
    """Real training digits with 70% of two classes removed: the plain FD worsens and the class mix is off,
    but reweighted to the test split's mix they score as real digits do; the weights give that mix exactly;
    a set lacking a class cannot be reweighted (NaN, not a silently wrong number)."""
    train, labels = load_digits("train", return_labels=True)
    test_mix = class_mix(load_digits("test"))
    assert test_mix.shape == (10,) and test_mix.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        class_mix(torch.zeros(3, 64))
    feats = metrics._features(train)
    w = metrics._class_matched_weights(feats, test_mix)
    mixed = torch.bincount(metrics._labels(feats), weights=w, minlength=10) / w.sum()
    torch.testing.assert_close(mixed, test_mix)
    g = torch.Generator().manual_seed(0)
    keep = ((labels != 3) & (labels != 7)) | (torch.rand(len(labels), generator=g) < 0.3)
    lopsided = train[keep][torch.randperm(int(keep.sum()), generator=g)[:1000]]
    fair = train[torch.randperm(len(train), generator=g)[:1000]]
    r_lop, r_fair = evaluate_samples(lopsided), evaluate_samples(fair)
    assert r_lop["class_mix_tv"] > 2 * r_lop["class_mix_tv_expected"] > 2 * r_fair["class_mix_tv"]
    assert r_lop["fd"] > 2 * r_fair["fd"]
    for r in (r_lop, r_fair):  # within each class these are real digits: at the class-matched floor
        assert abs(r["fd_class_matched"] - r["floor_class_matched"]) < 2 * r["fd_class_matched_sampling_sd"]
    # the class mix makes up much of the plain floor, and most of its spread
    assert r_fair["floor_class_matched"] < 0.7 * r_fair["floor_real_vs_real"]
    assert r_fair["fd_class_matched_sampling_sd"] < 0.5 * r_fair["fd_sampling_sd"]
    ones = train[labels == 1][:100]
    assert metrics._class_matched_weights(metrics._features(ones), test_mix) is None
    assert evaluate_samples(ones)["fd_class_matched"] != evaluate_samples(ones)["fd_class_matched"]  # NaN


def test_classifier_is_accurate_on_held_out_digits():
    x, y = load_digits("test", return_labels=True)
    with torch.no_grad():
        acc = (digits_classifier()(x).argmax(1) == y).double().mean().item()
    assert acc > 0.95


def test_floor_below_ceiling_and_real_digits_score_near_floor():
    ref = reference_scores(300)
    assert ref["real_vs_real"] < 0.3 * ref["gaussian_fit"]
    report = evaluate_samples(gaussian_fit_samples(300, seed=5))
    assert report["fd"] > 3 * report["floor_real_vs_real"]
    assert report["classes_present"] >= 5


def test_floor_spread_shrinks_with_more_images():
    # FD is a biased, noisy estimator: both its mean and its spread across subsets fall as n grows
    small, large = reference_scores(200), reference_scores(1000)
    assert small["real_vs_real_sd"] > 1.5 * large["real_vs_real_sd"] > 0
    assert small["real_vs_real"] > large["real_vs_real"]
    # independent draws (bootstrap) spread more than overlapping subsets of one set of 1,438 digits
    assert small["sampling_sd"] > large["sampling_sd"] > 1.25 * large["real_vs_real_sd"]
    with pytest.raises(ValueError, match="n must lie"):
        reference_scores(5000)
    with pytest.raises(ValueError, match="repeats"):
        reference_scores(300, repeats=0)
    with pytest.raises(ValueError, match="bootstrap"):
        reference_scores(300, bootstrap=1)


def test_nearest_neighbour_check_flags_copies():
    copies = nearest_neighbour_check(load_digits("train")[:200])
    assert copies["too_close"] > 0.9 and copies["median_nn_samples"] == 0
    unseen = nearest_neighbour_check(load_digits("test"))
    assert abs(unseen["too_close"] - 0.05) < 0.01  # by construction, the test set's own 5% quantile


def test_bad_feature_shapes():
    with pytest.raises(ValueError, match="equal F"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        evaluate_samples(-torch.ones(5, 1, 28, 28))


def test_samples_of_a_diverged_or_unmapped_sampler_are_named_as_such():
    real = load_digits("test")[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # real digits in [-1, 1]: nothing to say
        evaluate_samples(real)
    broken = real.clone()
    broken[3, 0, 2, 2], broken[7, 0, 0, 0] = float("nan"), float("inf")
    with pytest.raises(ValueError, match="2 of 200 samples contain NaN or infinite values"):
        evaluate_samples(broken)  # was: a LinAlgError about eigenvalues from inside the FD
    with pytest.raises(ValueError, match="2 of 200 samples"):
        nearest_neighbour_check(broken)
    with pytest.warns(UserWarning, match="without a negative value"):  # mapped back to the data's [0, 16]
        evaluate_samples((real + 1) * 8)
    with pytest.warns(UserWarning, match="off course"):
        evaluate_samples(real * 3)


def test_summarise_reports_averages_and_spreads():
    reports = [evaluate_samples(gaussian_fit_samples(200, seed=seed)) for seed in (1, 2, 3)]
    summary = summarise_reports(reports)
    fds = torch.tensor([r["fd"] for r in reports], dtype=torch.float64)
    assert summary["fd"] == pytest.approx(fds.mean().item())
    assert summary["fd_sd"] == pytest.approx(fds.std().item()) and summary["fd_sd"] > 0
    assert summary["fd_each"] == pytest.approx(fds.tolist())
    assert summary["too_close"] == pytest.approx(sum(r["too_close"] for r in reports) / 3)
    matched = torch.tensor([r["fd_class_matched"] for r in reports], dtype=torch.float64)
    assert summary["fd_class_matched_each"] == pytest.approx(matched.tolist())
    assert summary["fd_class_matched_sd"] == pytest.approx(matched.std().item()) and summary["fd_class_matched_sd"] > 0
    with pytest.raises(ValueError, match="at least one"):
        summarise_reports([])


def test_cold_cache_builds_the_classifier_inside_no_grad(tmp_path, monkeypatch):
    # without the shipped weights, a learner's first FD trains the classifier: `evaluate_samples` asks for it
    # inside no_grad, and it must still train (it used to fail with "element 0 of tensors does not require grad")
    monkeypatch.setattr(metrics, "SHIPPED_CLASSIFIER", tmp_path / "absent.pt")
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path))
    digits_classifier.cache_clear()
    try:
        with torch.no_grad(), pytest.warns(UserWarning, match="absent.pt is missing: FD_digits uses a classifier"):
            built = digits_classifier()
        assert list(tmp_path.glob("digits_classifier_*.pt"))  # trained and cached, not loaded
        x, y = load_digits("test", return_labels=True)
        assert (built(x).argmax(1) == y).double().mean().item() > 0.95
    finally:
        digits_classifier.cache_clear()


def test_shipped_classifier_is_what_training_produces(tmp_path):
    # the shipped weights came from `export_digits_classifier`; retraining reproduces them to float rounding
    # (bit for bit on the CPU that made them; on others the predictions still agree)
    shipped = digits_classifier()
    path = metrics.export_digits_classifier(tmp_path / "c.pt")
    again = metrics.DigitsClassifier()
    again.load_state_dict(torch.load(path, weights_only=True))
    x = load_digits("all")
    with torch.no_grad():
        agree = (shipped(x).argmax(1) == again(x).argmax(1)).double().mean().item()
    assert agree > 0.98


def test_corrupt_shipped_classifier_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "digits_classifier.pt"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(metrics, "SHIPPED_CLASSIFIER", bad)
    digits_classifier.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="digits_classifier.pt is unreadable") as err:
            digits_classifier()
        # the cause, without torch's advice to load with weights_only=False
        assert "Unsupported operand" in str(err.value) and "False" not in str(err.value), err.value
    finally:
        digits_classifier.cache_clear()


def test_digits_features_are_what_fd_digits_compares():
    """The public features give evaluate_samples' FD (against the test digits) when passed to frechet_distance,
    are the classifier's own penultimate layer, and refuse what the metrics refuse."""
    train, test = load_digits("train"), load_digits("test")
    g = torch.Generator().manual_seed(0)
    x = train[torch.randperm(len(train), generator=g)[:300]]
    feats = digits_features(x)
    assert feats.shape == (300, 64) and feats.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(feats, digits_classifier().features(x).double())
    assert frechet_distance(feats, digits_features(test)) == pytest.approx(evaluate_samples(x)["fd"], rel=1e-9)
    assert frechet_distance(feats, digits_features(train)) < frechet_distance(feats, digits_features(-x))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        digits_features(-torch.ones(3, 64))
    with pytest.raises(ValueError, match="1 of 2 samples contain NaN"):
        digits_features(torch.tensor([0.0, float("nan")]).reshape(2, 1, 1, 1).expand(2, 1, 8, 8))
