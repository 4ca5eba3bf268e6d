"""Prior-shift correction, recalibration, calibration CIs, decision curves, triage, T-score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from osteo.evaluation.calibration import calibration_slope_intercept
from osteo.evaluation.calibration_curve import calibration_with_ci, smoothed_calibration_curve
from osteo.evaluation.decision_curve import decision_curve, net_benefit
from osteo.evaluation.recalibration import (
    fit_recalibration,
    logit,
    prior_shift_correct,
    sigmoid,
)
from osteo.evaluation.triage import apply_triage, choose_triage
from osteo.evaluation.tscore import tscore_metrics


def test_prior_shift_correction_recovers_known_risks():
    """Fit a logistic model with pos_weight w on data with known risks: its raw
    probabilities are inflated by log w; the correction gives back the true risks."""
    rng = np.random.default_rng(0)
    n = 40000
    x = rng.normal(size=n)
    true_logit = -2.0 + 1.3 * x  # prevalence ~ 0.17, like the cohort
    y = (rng.random(n) < sigmoid(true_logit)).astype(np.float32)
    w = float((y == 0).sum() / (y == 1).sum())  # the data module's n_neg / n_pos
    weight = torch.zeros(1, requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            weight * xt + bias, yt, pos_weight=torch.tensor(w)
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    raw = torch.sigmoid(weight * xt + bias).detach().numpy().astype(float)
    corrected = prior_shift_correct(raw, w)
    risk = sigmoid(true_logit)
    assert np.mean(np.abs(raw - risk)) > 0.1  # the weighting visibly inflates the risks
    assert np.mean(np.abs(corrected - risk)) < 0.01
    assert np.mean(corrected) == pytest.approx(y.mean(), abs=0.01)
    fit = calibration_slope_intercept(y, corrected)
    assert fit.calibration_in_the_large == pytest.approx(0.0, abs=0.05)
    assert fit.slope == pytest.approx(1.0, abs=0.05)
    assert calibration_slope_intercept(y, raw).calibration_in_the_large < -1.0


def test_prior_shift_is_a_logit_shift_and_keeps_the_ranking():
    p = np.array([0.1, 0.4, 0.7, 0.95])
    np.testing.assert_allclose(logit(prior_shift_correct(p, 7.0)), logit(p) - np.log(7.0))
    assert np.all(np.diff(prior_shift_correct(p, 7.0)) > 0)
    with pytest.raises(ValueError, match="pos_weight"):
        prior_shift_correct(p, 0.0)


def test_module_predict_step_applies_the_prior_shift():
    from osteo.classification.module import OsteoporosisModule

    module = OsteoporosisModule(head="clinical", pos_weight=5.0, scheduler="none", hidden=8)
    module.eval()
    batch = {"clinical": torch.randn(6, 3), "study_id": [f"s{i}" for i in range(6)]}
    with torch.no_grad():
        out = module.predict_step(batch, 0)
        raw_logit = module.head(module.head_features(batch))["logit"]
    assert module.logit_shift == pytest.approx(np.log(5.0))
    np.testing.assert_allclose(
        out["probability_uncorrected"].numpy(), torch.sigmoid(raw_logit).numpy(), rtol=1e-6
    )
    np.testing.assert_allclose(
        out["probability"].numpy(), torch.sigmoid(raw_logit - np.log(5.0)).numpy(), rtol=1e-5
    )
    unweighted = OsteoporosisModule(head="clinical", imbalance="focal", scheduler="none")
    assert unweighted.logit_shift == 0.0


def test_platt_and_isotonic_recalibration_fit_on_val():
    rng = np.random.default_rng(1)
    x = rng.normal(size=3000)
    y = (rng.random(3000) < sigmoid(-1 + 0.8 * x)).astype(int)
    miscalibrated = sigmoid(1.0 + 2.0 * x)  # too extreme and too high
    platt = fit_recalibration("platt", y, miscalibrated)
    assert platt.params["slope"] == pytest.approx(0.4, abs=0.06)
    fixed = platt(miscalibrated)
    assert np.mean(fixed) == pytest.approx(y.mean(), abs=0.01)
    iso = fit_recalibration("isotonic", y, miscalibrated)
    assert np.all(np.diff(iso(np.sort(miscalibrated))) >= 0)
    assert np.mean(iso(miscalibrated)) == pytest.approx(y.mean(), abs=1e-9)
    assert fit_recalibration("none", y, miscalibrated)(miscalibrated) is not None
    with pytest.raises(ValueError, match="unknown recalibration"):
        fit_recalibration("beta", y, miscalibrated)
    with pytest.raises(ValueError, match="both classes"):
        fit_recalibration("platt", np.zeros(5), np.linspace(0.1, 0.5, 5))


def test_calibration_cis_and_smoothed_curve():
    rng = np.random.default_rng(2)
    n = 2000
    patients = np.repeat(np.arange(n // 2), 2)
    risk = sigmoid(rng.normal(-1.2, 1.5, size=n))
    y = (rng.random(n) < risk).astype(int)
    result = calibration_with_ci(y, risk, patients, n_resamples=200, seed=0)
    low, high = result["calibration_slope_ci"]
    assert low < result["calibration_slope"] < high and low < 1.0 < high
    assert "patient bootstrap" in result["calibration_ci_method"]
    curve = smoothed_calibration_curve(y, risk, patients, n_resamples=50, seed=0)
    grid, observed = np.array(curve["grid"]), np.array(curve["observed"])
    assert np.max(np.abs(observed - grid)) < 0.1  # well calibrated: near the diagonal
    assert np.all(np.array(curve["band_low"]) <= observed + 1e-9)
    assert np.all(np.array(curve["band_high"]) >= observed - 1e-9)


def test_net_benefit_worked_example():
    # 10 studies, 3 positive. At t = 0.25 the model calls 5 positive: 2 TP, 3 FP.
    # NB = 2/10 - 3/10 * 0.25/0.75 = 0.2 - 0.1 = 0.1; treat all = 0.3 - 0.7/3.
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.1, 0.5, 0.4, 0.3, 0.2, 0.2, 0.1, 0.05])
    assert net_benefit(y, p, 0.25) == pytest.approx(0.1)
    curve = decision_curve(y, p, [0.25, 0.5]).set_index("threshold")
    assert curve.loc[0.25, "net_benefit_treat_all"] == pytest.approx(0.3 - 0.7 / 3)
    assert curve.loc[0.25, "net_benefit_treat_none"] == 0.0
    # t = 0.5: calls 0.9, 0.6, 0.5 -> 2 TP, 1 FP: 0.2 - 0.1 * 1 = 0.1
    assert curve.loc[0.5, "net_benefit_model"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        net_benefit(y, p, 1.0)


def test_triage_rule_is_chosen_on_val_and_reaches_the_targets_there():
    rng = np.random.default_rng(3)
    n = 800
    y = (rng.random(n) < 0.25).astype(int)
    p = sigmoid(-1.5 + 2.0 * (y - 0.5) + rng.normal(size=n))
    rule = choose_triage(y, p, 0.95, 0.95)
    assert rule.note == ""  # the zones do not meet on this data
    assert rule.rule_out_below is not None and rule.rule_in_at_or_above is not None
    out, inside = p < rule.rule_out_below, p >= rule.rule_in_at_or_above
    assert np.mean(y[out] == 0) >= 0.95 and np.mean(y[inside] == 1) >= 0.95
    # The zone is maximal: one more study ruled out (the next threshold up) breaks the target.
    higher = np.unique(p)[np.unique(p) > rule.rule_out_below]
    if higher.size:
        assert np.mean(y[p < higher[0]] == 0) < 0.95
    applied = apply_triage(y, p, rule, np.arange(n), n_resamples=100, seed=0)
    assert applied["share_ruled_out"] == pytest.approx(out.mean())
    assert applied["npv_ruled_out"] == pytest.approx(np.mean(y[out] == 0))
    lo, hi = applied["npv_ruled_out_ci"]
    assert lo <= applied["npv_ruled_out"] <= hi
    # Well separated: the zones would overlap and the rule-out is capped at the rule-in.
    strong = sigmoid(-1.5 + 5.0 * (y - 0.5) + rng.normal(size=n))
    capped = choose_triage(y, strong)
    assert capped.rule_out_below <= capped.rule_in_at_or_above
    one_class = choose_triage(np.zeros(5), np.linspace(0, 1, 5))
    assert one_class.rule_out_below is None and "one class" in one_class.note


def test_tscore_metrics_against_direct_formulas():
    rng = np.random.default_rng(4)
    t = rng.normal(-1.8, 1.0, size=200)
    pred = t + rng.normal(0.2, 0.5, size=200)
    y = (t <= -2.5).astype(int)
    result = tscore_metrics(t, pred, y)
    assert result["mae"] == pytest.approx(np.mean(np.abs(pred - t)))
    assert result["pearson_r"] == pytest.approx(np.corrcoef(t, pred)[0, 1])
    assert result["bias"] == pytest.approx(np.mean(pred - t))
    assert result["auc"] > 0.85 and result["auc_ci"][0] < result["auc"]
    t_missing = t.copy()
    t_missing[:10] = np.nan
    assert tscore_metrics(t_missing, pred, y)["n"] == 190


def test_training_curves_from_lightning_csv_files(tmp_path):
    from osteo.evaluation.training_curves import epoch_table, plot_training_curves

    classifier = tmp_path / "classifier.csv"
    # Lightning's CSVLogger layout: step rows and epoch rows, blanks elsewhere.
    classifier.write_text(
        "epoch,step,train/loss_step,train/loss_epoch,val/loss,val/auc\n"
        "0,0,0.9,,,\n0,1,,,0.8,0.61\n0,1,,0.85,,\n"
        "1,2,0.7,,,\n1,3,,,0.6,0.72\n1,3,,0.65,,\n"
    )
    table = epoch_table(classifier)
    assert table["epoch"].tolist() == [0, 1]
    assert table["val/auc"].tolist() == [0.61, 0.72]
    assert table["train/loss_epoch"].tolist() == [0.85, 0.65]
    path = plot_training_curves(
        {"classifier": classifier, "segmentation": tmp_path / "no.csv"},
        tmp_path / "training_curves.png",
    )
    assert path.read_bytes().startswith(b"\x89PNG")
    assert plot_training_curves({"classifier": tmp_path / "absent.csv"}, tmp_path / "x.png") is None
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no 'epoch' column"):
        epoch_table(bad)


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_recalibration_record_rebuilds_the_same_map(method):
    """tools/predict.py rebuilds the val recalibration from metrics.json's record."""
    import json

    from osteo.evaluation.recalibration import Recalibrator
    from osteo.evaluation.report import to_jsonable

    rng = np.random.default_rng(5)
    p = sigmoid(rng.normal(-1, 1.5, size=300))
    y = (rng.random(300) < sigmoid(0.5 * logit(p) - 0.5)).astype(int)
    fitted = fit_recalibration(method, y, p)
    record = json.loads(json.dumps(to_jsonable({"method": method, **fitted.params})))
    rebuilt = Recalibrator.from_record(record)
    new = np.linspace(0.0, 1.0, 57)
    np.testing.assert_allclose(rebuilt(new), fitted(new), atol=1e-12)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, y)
        np.testing.assert_allclose(fitted(new), reference.predict(new), atol=1e-12)
    assert Recalibrator.from_record(None)(new) is not None
    with pytest.raises(ValueError, match="lacks"):
        Recalibrator.from_record({"method": "platt"})
