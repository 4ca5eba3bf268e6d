"""Statistics of osteo.evaluation checked against independent computations.

DeLong: the O(m*n) structural components of DeLong, DeLong & Clarke-Pearson (1988) written
out with pairwise comparisons, against the midrank algorithm of Sun & Xu (2014) in the package.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from osteo.evaluation import (
    age_band_names,
    age_bands,
    binary_metrics_at_threshold,
    bootstrap_auc_ci,
    calibration_slope_intercept,
    check_binary_inputs,
    delong_auc,
    delong_covariance,
    delong_paired_test,
    expected_calibration_error,
    holm_adjust,
    midranks,
    patient_bootstrap,
    reliability_bins,
    roc_auc,
    roc_curve,
    select_threshold,
    subgroup_aucs,
    wilson_interval,
)

# ---------------------------------------------------------------- independent reference


def delong_reference(y_true, score_vectors):
    """DeLong et al. (1988) by definition: psi(X, Y) over every positive-negative pair."""
    y_true = np.asarray(y_true)
    v10s, v01s, aucs = [], [], []
    for scores in score_vectors:
        scores = np.asarray(scores, dtype=float)
        x, y = scores[y_true == 1], scores[y_true == 0]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    m, n = len(v10s[0]), len(v01s[0])
    k = len(aucs)
    s10, s01 = np.zeros((k, k)), np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            s10[r, s] = np.sum((v10s[r] - aucs[r]) * (v10s[s] - aucs[s])) / (m - 1)
            s01[r, s] = np.sum((v01s[r] - aucs[r]) * (v01s[s] - aucs[s])) / (n - 1)
    return np.array(aucs), s10 / m + s01 / n


def reference_paired_p(y_true, a, b):
    aucs, cov = delong_reference(y_true, [a, b])
    z = (aucs[0] - aucs[1]) / math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return z, math.erfc(abs(z) / math.sqrt(2))  # two-sided normal p without scipy


def make_scores(kind: str, seed: int):
    """Labels and two correlated score vectors of a given flavour (ties included)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    y = (rng.random(n) < rng.uniform(0.15, 0.6)).astype(int)
    y[:2], y[2:4] = 1, 0  # at least 2 of each class
    shared = rng.normal(size=n)
    a = 1.2 * y + shared + rng.normal(scale=0.7, size=n)
    b = 0.6 * y + shared + rng.normal(scale=0.9, size=n)
    if kind == "discrete":  # a 5-point reader scale: massive ties
        a = np.clip(np.round(a + 3), 1, 5)
        b = np.clip(np.round(b + 3), 1, 5)
    elif kind == "rounded":  # some ties, across and within classes
        a, b = np.round(a, 1), np.round(b, 1)
    elif kind == "binary":  # a yes/no test: the ROC has one interior point
        a, b = (a > 0.5).astype(float), (b > 0.5).astype(float)
    return y, a, b


KINDS = ["continuous", "rounded", "discrete", "binary"]
CASES = [(kind, seed) for kind in KINDS for seed in range(6)]


# ---------------------------------------------------------------- AUC and DeLong


@pytest.mark.parametrize("kind,seed", CASES)
def test_midranks_match_scipy_average_ranks(kind, seed):
    _, a, b = make_scores(kind, seed)
    np.testing.assert_array_equal(midranks(a), scipy_stats.rankdata(a, method="average"))
    np.testing.assert_array_equal(midranks(b), scipy_stats.rankdata(b, method="average"))
    np.testing.assert_array_equal(midranks([3, 1, 3, 2, 3]), [4, 1, 4, 2, 4])


@pytest.mark.parametrize("kind,seed", CASES)
def test_auc_matches_sklearn(kind, seed):
    y, a, _ = make_scores(kind, seed)
    assert roc_auc(y, a) == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert delong_auc(y, a).auc == pytest.approx(roc_auc_score(y, a), abs=1e-12)


@pytest.mark.parametrize("kind,seed", CASES)
def test_roc_curve_area_equals_auc(kind, seed):
    y, a, _ = make_scores(kind, seed)
    fpr, tpr, thresholds = roc_curve(y, a)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(thresholds) < 0)
    trapezoid_area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)  # np.trapezoid: numpy>=2
    assert trapezoid_area == pytest.approx(roc_auc_score(y, a), abs=1e-12)


@pytest.mark.parametrize("kind,seed", CASES)
def test_delong_covariance_matches_pairwise_definition(kind, seed):
    y, a, b = make_scores(kind, seed)
    aucs, cov = delong_covariance(y, np.vstack([a, b]))
    ref_aucs, ref_cov = delong_reference(y, [a, b])
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-14, rtol=1e-10)
    assert delong_auc(y, a).variance == pytest.approx(ref_cov[0, 0], rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("kind,seed", CASES)
def test_paired_delong_matches_pairwise_definition(kind, seed):
    y, a, b = make_scores(kind, seed)
    result = delong_paired_test(y, a, b)
    z, p = reference_paired_p(y, a, b)
    assert result.z == pytest.approx(z, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-8, abs=1e-15)
    assert result.difference == pytest.approx(result.auc_a - result.auc_b)
    swapped = delong_paired_test(y, b, a)
    assert swapped.z == pytest.approx(-result.z) and swapped.p_value == pytest.approx(p)


def test_delong_ci_is_wald_interval_clipped_to_unit_range():
    y, a, _ = make_scores("continuous", 3)
    estimate = delong_auc(y, a, confidence_level=0.90)
    half = scipy_stats.norm.ppf(0.95) * math.sqrt(delong_reference(y, [a])[1][0, 0])
    assert estimate.ci == pytest.approx((estimate.auc - half, estimate.auc + half))
    perfect = delong_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert (perfect.auc, perfect.variance, perfect.ci) == (1.0, 0.0, (1.0, 1.0))


def test_paired_delong_identical_and_degenerate_scores():
    y, a, _ = make_scores("continuous", 1)
    same = delong_paired_test(y, a, a)
    assert (same.z, same.p_value, same.difference) == (0.0, 1.0, 0.0)
    # Perfect against constant: both variances are 0, the difference (0.5) is certain.
    certain = delong_paired_test([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], [0.5] * 4)
    assert certain.p_value == 0.0 and certain.z == math.inf


def test_paired_delong_recovers_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(7)
    y = (rng.random(600) < 0.3).astype(int)
    good = 2.0 * y + rng.normal(size=600)
    weak = 0.3 * y + rng.normal(size=600)
    assert delong_paired_test(y, good, weak).p_value < 1e-6
    # Two exchangeable models: p-values of repeated draws are roughly uniform.
    p_values = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        y = (rng.random(150) < 0.3).astype(int)
        p_values.append(
            delong_paired_test(y, y + rng.normal(size=150), y + rng.normal(size=150)).p_value
        )
    assert 0.01 <= np.mean(np.array(p_values) < 0.05) <= 0.15


# ---------------------------------------------------------------- Holm


def test_holm_hand_worked_example():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06.
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjust([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm_adjust([0.02, 0.02]), [0.04, 0.04])
    np.testing.assert_allclose(holm_adjust([0.3]), [0.3])
    assert holm_adjust([]).shape == (0,)


@pytest.mark.parametrize("bad", [[0.1, float("nan")], [1.2], [-0.1], [[0.1, 0.2]]])
def test_holm_rejects_invalid_p_values(bad):
    with pytest.raises(ValueError, match="p_values"):
        holm_adjust(bad)


# ---------------------------------------------------------------- Wilson and thresholds


@pytest.mark.parametrize(
    "successes,total,low,high",
    [
        # Newcombe (1998), Statistics in Medicine 17:857, Table II, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_wilson_interval_matches_newcombe_1998(successes, total, low, high):
    assert wilson_interval(successes, total) == pytest.approx((low, high), abs=5e-5)


@pytest.mark.parametrize(
    "args,match",
    [
        ((1, 0), "total > 0"),
        ((3, 2), "successes"),
        ((-1, 2), "successes"),
        ((1, 2, 1.0), "confidence"),
    ],
)
def test_wilson_interval_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(*args)


def test_youden_threshold_and_target_sensitivity_on_hand_example():
    y = [0, 0, 0, 1, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8]
    # J at 0.6: 3/4 - 0 = 0.75; at 0.35: 1 - 1/4 = 0.75 (tie): the higher threshold wins.
    assert select_threshold(y, s) == 0.6
    assert select_threshold(y, s, "sensitivity", target_sensitivity=1.0) == 0.35
    assert select_threshold(y, s, "sensitivity", target_sensitivity=0.7) == 0.6
    assert select_threshold(y, s, "sensitivity", target_sensitivity=0.5) == 0.7


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"method": "f1"}, "unknown threshold method"),
        ({"method": "sensitivity"}, "target_sensitivity"),
        ({"target_sensitivity": 0.9}, "only used"),
    ],
)
def test_select_threshold_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_threshold([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], **kwargs)


def test_binary_metrics_at_threshold_counts_and_wilson_intervals():
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    s = [0.9, 0.8, 0.5, 0.2, 0.6, 0.5, 0.1, 0.1, 0.1, 0.0]
    m = binary_metrics_at_threshold(y, s, 0.5)  # >= 0.5 is positive: ties at 0.5 count
    assert (m.tp, m.fn, m.fp, m.tn) == (3, 1, 2, 4)
    assert (m.sensitivity, m.specificity, m.ppv, m.npv) == (0.75, 4 / 6, 0.6, 0.8)
    assert m.sensitivity_ci == wilson_interval(3, 4)
    assert m.npv_ci == wilson_interval(4, 5)
    assert m.accuracy == 0.7
    nobody = binary_metrics_at_threshold(y, s, 0.95)
    assert math.isnan(nobody.ppv) and all(math.isnan(v) for v in nobody.ppv_ci)
    assert nobody.sensitivity == 0.0


def test_threshold_from_validation_is_applied_unchanged_to_a_test_set():
    rng = np.random.default_rng(3)
    y_val, y_test = rng.random(200) < 0.3, rng.random(200) < 0.3
    s_val, s_test = y_val + rng.normal(size=200), y_test + rng.normal(size=200)
    threshold = select_threshold(y_val, s_val)
    assert threshold in s_val
    metrics = binary_metrics_at_threshold(y_test, s_test, threshold)
    assert metrics.threshold == threshold
    assert metrics.tp == int(np.sum((s_test >= threshold) & y_test))


# ---------------------------------------------------------------- bootstrap


def _vectorised_auc(y, s, axis=-1):
    """AUC along the last axis for scipy.stats.bootstrap's batches of resamples."""
    ranks = scipy_stats.rankdata(s, axis=axis)
    m = y.sum(axis=axis)
    return ((ranks * y).sum(axis=axis) - m * (m + 1) / 2) / (m * (y.shape[axis] - m))


def _scipy_percentile_ci(y, s, statistic, n_resamples=4000):
    result = scipy_stats.bootstrap(
        (y, s),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(123),
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.fixture(scope="module")
def image_level_data():
    rng = np.random.default_rng(11)
    y = (rng.random(300) < 0.3).astype(int)
    return y, 1.3 * y + rng.normal(size=300)


def test_bootstrap_auc_matches_scipy_on_one_image_per_patient(image_level_data):
    y, s = image_level_data
    ours = bootstrap_auc_ci(y, s, n_resamples=4000, seed=5, stratify=False)
    assert ours.ci == pytest.approx(_scipy_percentile_ci(y, s, _vectorised_auc), abs=0.008)
    assert ours.unit == "study" and ours.n_skipped == 0 and ours.n_resamples == 4000
    stratified = bootstrap_auc_ci(y, s, n_resamples=4000, seed=5)
    assert stratified.ci == pytest.approx(ours.ci, abs=0.012)


def test_bootstrap_of_a_mean_matches_scipy(image_level_data):
    y, s = image_level_data
    ours = patient_bootstrap(
        lambda _y, x: float(np.mean(x)), y, s, n_resamples=4000, seed=2, stratify=False
    )
    assert ours.ci == pytest.approx(
        _scipy_percentile_ci(y, s, lambda _y, x, axis=-1: np.mean(x, axis=axis)), abs=0.015
    )


def test_bootstrap_resamples_patients_not_images():
    rng = np.random.default_rng(4)
    y = (rng.random(120) < 0.3).astype(int)
    s = y + rng.normal(size=120)
    patients = np.array([f"p{i:03d}" for i in range(120)])
    # Every patient imaged twice with the same result: the information is that of 120 studies.
    y2, s2, p2 = np.repeat(y, 2), np.repeat(s, 2), np.repeat(patients, 2)
    by_patient = bootstrap_auc_ci(y2, s2, p2, n_resamples=500, seed=9)
    single = bootstrap_auc_ci(y, s, n_resamples=500, seed=9)
    np.testing.assert_allclose(by_patient.distribution, single.distribution, atol=1e-12)
    assert by_patient.unit == "patient"
    naive = bootstrap_auc_ci(y2, s2, n_resamples=500, seed=9)  # images as if independent
    assert naive.ci_high - naive.ci_low < 0.85 * (by_patient.ci_high - by_patient.ci_low)


def test_stratified_bootstrap_keeps_class_sizes_and_is_seeded():
    rng = np.random.default_rng(0)
    y = (rng.random(80) < 0.2).astype(int)
    s = rng.normal(size=80)
    counts = patient_bootstrap(lambda yy, _s: yy.sum(), y, s, n_resamples=50, seed=1)
    assert np.all(counts.distribution == y.sum())
    first = bootstrap_auc_ci(y, s, n_resamples=200, seed=1)
    assert bootstrap_auc_ci(y, s, n_resamples=200, seed=1).ci == first.ci
    assert bootstrap_auc_ci(y, s, n_resamples=200, seed=2).ci != first.ci


def test_patient_with_a_positive_study_is_in_the_positive_stratum():
    y = np.array([0, 1, 0, 0, 1, 0, 0, 1])
    s = np.arange(8.0)
    patients = np.array(["a", "a", "b", "c", "d", "e", "f", "g"])  # "a": negative then positive
    positives = patient_bootstrap(lambda yy, _s: yy.sum(), y, s, patients, n_resamples=100)
    # 3 positive patients (a, d, g) drawn each time; "a" brings 1 positive and 1 negative study.
    assert set(positives.distribution) <= {3.0}


# ---------------------------------------------------------------- calibration


def test_reliability_bins_and_ece_on_hand_example():
    y = [0, 1, 0, 1, 1, 1]
    p = [0.05, 0.15, 0.15, 0.85, 0.95, 1.0]
    bins = reliability_bins(y, p, n_bins=2)
    np.testing.assert_allclose(bins.count, [3, 3])
    np.testing.assert_allclose(bins.mean_predicted, [0.35 / 3, 2.8 / 3])
    np.testing.assert_allclose(bins.observed_rate, [1 / 3, 1.0])
    expected = 0.5 * abs(1 / 3 - 0.35 / 3) + 0.5 * abs(1 - 2.8 / 3)
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(expected)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    quantile = reliability_bins(y, p, n_bins=3, strategy="quantile")
    assert quantile.count.sum() == 6


def test_calibration_slope_intercept_matches_sklearn_unpenalised_fit():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.02, 0.98, 800)
    logit = np.log(p / (1 - p))
    y = (rng.random(800) < 1 / (1 + np.exp(-(0.4 + 0.6 * logit)))).astype(int)
    fit = calibration_slope_intercept(y, p)
    model = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(logit[:, None], y)
    assert fit.slope == pytest.approx(model.coef_[0, 0], abs=1e-5)
    assert fit.intercept == pytest.approx(model.intercept_[0], abs=1e-5)
    assert 0.45 < fit.slope < 0.75  # overconfident model: slope below 1


def test_calibration_in_the_large_for_a_constant_prediction():
    # With logit(p) as offset, the intercept is logit(observed rate) - logit(predicted).
    y = np.array([1] * 30 + [0] * 70)
    fit = calibration_slope_intercept(y, np.full(100, 0.2))
    assert fit.calibration_in_the_large == pytest.approx(math.log(0.3 / 0.7) - math.log(0.25))
    assert math.isnan(fit.slope) and "not identifiable" in fit.note


def test_calibration_slope_is_nan_with_a_note_under_separation():
    fit = calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.4, 0.4, 1.0])
    assert math.isnan(fit.slope) and math.isnan(fit.intercept) and "separate" in fit.note
    assert math.isfinite(fit.calibration_in_the_large)


def test_calibration_of_a_well_calibrated_model_is_near_ideal():
    rng = np.random.default_rng(8)
    p = rng.beta(2, 5, 20000)
    y = (rng.random(20000) < p).astype(int)
    fit = calibration_slope_intercept(y, p)
    assert fit.slope == pytest.approx(1, abs=0.08)
    assert fit.calibration_in_the_large == pytest.approx(0, abs=0.05)
    assert expected_calibration_error(y, p) < 0.02


# ---------------------------------------------------------------- subgroups


def test_age_bands():
    assert age_band_names() == ["<50", "50-59", "60-69", "70-79", ">=80"]
    labels = age_bands([49.9, 50, 59.99, 60, 80, 95, float("nan")])
    assert labels.tolist() == ["<50", "50-59", "50-59", "60-69", ">=80", ">=80", "missing"]
    assert age_band_names([65]) == ["<65", ">=65"]
    with pytest.raises(ValueError, match="increasing"):
        age_bands([60], edges=[70, 60])


def test_subgroup_aucs_match_auc_within_each_group():
    rng = np.random.default_rng(5)
    y = (rng.random(200) < 0.3).astype(int)
    s = y + rng.normal(size=200)
    sex = rng.choice(np.array(["F", "M"], dtype=object), size=200)
    sex[:3] = None
    results = {r.group: r for r in subgroup_aucs(y, s, sex)}
    assert list(results) == ["F", "M", "missing"]
    for group in ("F", "M"):
        mask = sex == group
        assert results[group].auc == pytest.approx(roc_auc_score(y[mask], s[mask]))
        assert results[group].auc_ci == delong_auc(y[mask], s[mask]).ci
        assert results[group].n == mask.sum()
    assert results["missing"].auc is None and "needs >= 2" in results["missing"].note
    ordered = subgroup_aucs(y, s, age_bands(rng.uniform(40, 90, 200)), order=age_band_names())
    assert [r.group for r in ordered] == age_band_names()


# ---------------------------------------------------------------- edge cases


ONE_CLASS = ([1, 1, 1], [0.2, 0.5, 0.9])
WITH_NAN = ([0, 1, 0, 1], [0.2, float("nan"), 0.1, 0.9])
MISMATCHED = ([0, 1, 0, 1], [0.2, 0.3, 0.4])


@pytest.mark.parametrize(
    "function",
    [
        roc_auc,
        delong_auc,
        select_threshold,
        roc_curve,
        bootstrap_auc_ci,
        calibration_slope_intercept,
        lambda y, s: binary_metrics_at_threshold(y, s, 0.5),
        lambda y, s: delong_paired_test(y, s, s),
        lambda y, s: delong_paired_test(y, np.zeros(len(y)), s),
    ],
)
@pytest.mark.parametrize(
    "inputs,match",
    [
        (ONE_CLASS, "only one class present in y_true: all 3 studies are positive"),
        (WITH_NAN, "contains 1 NaN or infinite value"),
        (MISMATCHED, r"different lengths \(4 vs 3\)"),
    ],
)
def test_edge_cases_raise_clear_errors(function, inputs, match):
    with pytest.raises(ValueError, match=match):
        function(*inputs)


@pytest.mark.parametrize(
    "y,s,match",
    [
        ([0, 2, 1], [0.1, 0.2, 0.3], "only 0/1 labels"),
        ([0, float("nan"), 1], [0.1, 0.2, 0.3], "only 0/1 labels"),
        ([], [], "no studies"),
        ([0, 1], [0.1, float("inf")], "NaN or infinite"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_labels_and_scores(y, s, match):
    with pytest.raises(ValueError, match=match):
        check_binary_inputs(y, s)


def test_delong_needs_two_of_each_class_but_auc_does_not():
    assert roc_auc([0, 0, 1], [0.1, 0.3, 0.2]) == 0.5
    with pytest.raises(ValueError, match="at least 2 positive and 2 negative"):
        delong_auc([0, 0, 1], [0.1, 0.3, 0.2])


def test_other_argument_checks():
    with pytest.raises(ValueError, match="y_prob must be probabilities"):
        expected_calibration_error([0, 1], [0.2, 1.3])
    with pytest.raises(ValueError, match="unknown bin strategy"):
        reliability_bins([0, 1], [0.2, 0.3], strategy="equal")
    with pytest.raises(ValueError, match="patient_ids has length 2"):
        bootstrap_auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], ["a", "b"])
    with pytest.raises(ValueError, match="patient_ids contains"):
        bootstrap_auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], ["a", None, "b", "c"])
    with pytest.raises(ValueError, match="confidence_level"):
        delong_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], confidence_level=95)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        binary_metrics_at_threshold([0, 1], [0.1, 0.2], float("nan"))
    with pytest.raises(ValueError, match="groups has length"):
        subgroup_aucs([0, 1], [0.1, 0.2], ["F"])
