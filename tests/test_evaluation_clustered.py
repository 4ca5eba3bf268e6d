"""Clustered (patient-level) inference against direct computations on small data."""

from __future__ import annotations

import numpy as np
import pytest

from osteo.evaluation.clustered import (
    bootstrap_rates,
    clustered_auc,
    clustered_covariance,
    clustered_paired_test,
    patient_index_bootstrap,
)
from osteo.evaluation.stats import delong_covariance, delong_paired_test


def obuchowski_brute_force(y, score_vectors, patients):
    """Obuchowski (1997) by its definition: psi over every positive-negative pair, structural
    components summed per patient with explicit loops."""
    y = np.asarray(y)
    patients = np.asarray(patients)
    ids = sorted(set(patients.tolist()))
    pos = [j for j in range(len(y)) if y[j] == 1]
    neg = [j for j in range(len(y)) if y[j] == 0]
    big_m, big_n = len(pos), len(neg)

    def psi(x, z):
        return 1.0 if x > z else 0.5 if x == z else 0.0

    aucs, a_all, b_all = [], [], []
    for s in score_vectors:
        theta = sum(psi(s[i], s[j]) for i in pos for j in neg) / (big_m * big_n)
        v10 = {i: sum(psi(s[i], s[j]) for j in neg) / big_n for i in pos}
        v01 = {j: sum(psi(s[i], s[j]) for i in pos) / big_m for j in neg}
        a, b = [], []
        for p in ids:
            mine = [j for j in range(len(y)) if patients[j] == p]
            m_i = sum(1 for j in mine if y[j] == 1)
            n_i = len(mine) - m_i
            a.append(sum(v10[j] for j in mine if y[j] == 1) - m_i * theta)
            b.append(sum(v01[j] for j in mine if y[j] == 0) - n_i * theta)
        aucs.append(theta)
        a_all.append(np.array(a))
        b_all.append(np.array(b))
    i10 = len({patients[j] for j in pos})
    i01 = len({patients[j] for j in neg})
    big_i = len(ids)
    k = len(score_vectors)
    cov = np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            s10 = i10 / ((i10 - 1) * big_m) * np.sum(a_all[r] * a_all[s])
            s01 = i01 / ((i01 - 1) * big_n) * np.sum(b_all[r] * b_all[s])
            s11 = big_i / (big_i - 1) * np.sum(a_all[r] * b_all[s] + b_all[r] * a_all[s]) / 2
            cov[r, s] = s10 / big_m + s01 / big_n + 2 * s11 / (big_m * big_n)
    return np.array(aucs), cov


def clustered_data(seed: int, n_patients: int = 25, ties: bool = False):
    """Patients with 1-3 studies (a patient effect makes their studies correlated)."""
    rng = np.random.default_rng(seed)
    per_patient = rng.choice([1, 1, 2, 3], size=n_patients)
    patients = np.repeat([f"p{i:02d}" for i in range(n_patients)], per_patient)
    effect = np.repeat(rng.normal(size=n_patients), per_patient)
    risk = np.repeat(rng.random(n_patients), per_patient)
    y = (rng.random(len(patients)) < 0.25 + 0.5 * risk).astype(int)
    y[:2], y[-2:] = 1, 0
    a = 1.1 * y + effect + rng.normal(scale=0.6, size=len(y))
    b = 0.5 * y + effect + rng.normal(scale=0.8, size=len(y))
    if ties:
        a, b = np.round(a), np.round(b)
    return y, a, b, patients


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_clustered_covariance_matches_brute_force_with_repeats(seed, ties):
    y, a, b, patients = clustered_data(seed, ties=ties)
    assert len(set(patients)) < len(y)  # there are repeat studies
    aucs, cov = clustered_covariance(y, np.vstack([a, b]), patients)
    ref_aucs, ref_cov = obuchowski_brute_force(y, [a, b], patients)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_clustered_equals_delong_with_one_study_per_patient(seed):
    y, a, b, _ = clustered_data(seed)
    singletons = np.array([f"s{i}" for i in range(len(y))])
    aucs, cov = clustered_covariance(y, np.vstack([a, b]), singletons)
    d_aucs, d_cov = delong_covariance(y, np.vstack([a, b]))
    np.testing.assert_allclose(aucs, d_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, d_cov, atol=1e-12)
    paired = clustered_paired_test(y, a, b, singletons)
    reference = delong_paired_test(y, a, b)
    assert paired.z == pytest.approx(reference.z, abs=1e-12)
    assert paired.p_value == pytest.approx(reference.p_value, abs=1e-12)
    # No patient ids: each study is its own patient, i.e. DeLong.
    assert clustered_auc(y, a).variance == pytest.approx(cov[0, 0], abs=1e-12)


def test_clustered_variance_tracks_the_patient_bootstrap():
    """With strongly correlated repeats the clustered variance is larger than DeLong's and
    close to the patient bootstrap's (an independent estimate of the same quantity)."""
    rng = np.random.default_rng(3)
    n_patients = 300
    per = rng.choice([1, 2, 3], size=n_patients)
    patients = np.repeat(np.arange(n_patients), per)
    latent = np.repeat(rng.normal(size=n_patients), per)
    y = np.repeat((rng.random(n_patients) < 0.3).astype(int), per)
    s = 1.0 * y + latent + rng.normal(scale=0.3, size=len(y))
    clustered = clustered_auc(y, s, patients)
    delong = clustered_auc(y, s)
    assert clustered.variance > 1.3 * delong.variance
    from osteo.evaluation.stats import _auc_unchecked

    boot = patient_index_bootstrap(
        lambda i: _auc_unchecked(y[i], s[i]), y, patients, n_resamples=1500, seed=1
    )
    width = boot.ci_high[0] - boot.ci_low[0]
    assert width == pytest.approx(2 * 1.96 * np.sqrt(clustered.variance), rel=0.15)


def test_paired_bootstrap_of_rates_matches_direct_counts():
    y, a, _, patients = clustered_data(1, n_patients=40)
    prob = 1 / (1 + np.exp(-a))
    cis = bootstrap_rates(y, prob, 0.6, patients, n_resamples=300, seed=0)
    calls = prob >= 0.6
    sens = np.sum(calls & (y == 1)) / np.sum(y == 1)
    low, high = cis["sensitivity"]
    assert low <= sens <= high
    assert set(cis) == {"sensitivity", "specificity", "ppv", "npv"}
    again = bootstrap_rates(y, prob, 0.6, patients, n_resamples=300, seed=0)
    assert again == cis  # seeded


def test_bootstrap_keeps_patients_whole():
    y = np.array([1, 1, 0, 0, 0, 1])
    patients = np.array(["a", "a", "b", "b", "c", "d"])
    seen = []

    def record(idx):
        seen.append(idx.copy())
        return 0.0

    patient_index_bootstrap(record, y, patients, n_resamples=50, seed=0)
    for idx in seen[1:]:
        counts = np.bincount(idx, minlength=6)
        assert counts[0] == counts[1] and counts[2] == counts[3]  # a and b drawn whole
        assert y[idx].min() == 0 and y[idx].max() == 1  # stratified: both classes


def test_clustered_needs_two_patients_per_class():
    with pytest.raises(ValueError, match="2 patients with a positive"):
        clustered_auc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2], ["a", "a", "b", "c"])
