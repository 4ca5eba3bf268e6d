"""Evaluation: AUC with clustered (Obuchowski) and DeLong CIs and tests, bootstrap, thresholds,
calibration, decision curves, triage, reports.

``stats`` / ``thresholds`` / ``calibration`` / ``subgroups`` work on arrays; ``runs`` reads run
folders and readers; ``report`` writes one run's metrics.json and report.md; ``comparison``
builds the multi-run table. See docs/evaluation.md for the statistics and their references.
"""

from osteo.evaluation.calibration import (
    CalibrationFit,
    ReliabilityBins,
    calibration_slope_intercept,
    expected_calibration_error,
    reliability_bins,
)
from osteo.evaluation.clustered import (
    ClusteredAUC,
    ClusteredPairedResult,
    bootstrap_rates,
    clustered_auc,
    clustered_covariance,
    clustered_paired_test,
    patient_index_bootstrap,
)
from osteo.evaluation.comparison import (
    DEFAULT_PRIMARY,
    ComparisonPlan,
    ComparisonResult,
    build_comparison_table,
    compare_runs,
    format_comparison_markdown,
    model_key,
    plan_comparisons,
    seed_summary,
)
from osteo.evaluation.decision_curve import decision_curve, net_benefit
from osteo.evaluation.recalibration import fit_recalibration, prior_shift_correct
from osteo.evaluation.report import (
    compute_run_metrics,
    evaluate_run,
    format_summary_table,
    summary_rows,
)
from osteo.evaluation.runs import (
    EvaluationInputError,
    Run,
    load_predictions,
    load_readers,
    load_run,
    run_name,
)
from osteo.evaluation.stats import (
    AUCEstimate,
    BootstrapResult,
    PairedDeLongResult,
    bootstrap_auc_ci,
    check_binary_inputs,
    delong_auc,
    delong_covariance,
    delong_paired_test,
    holm_adjust,
    midranks,
    patient_bootstrap,
    roc_auc,
)
from osteo.evaluation.subgroups import SubgroupAUC, age_band_names, age_bands, subgroup_aucs
from osteo.evaluation.thresholds import (
    BinaryMetrics,
    binary_metrics_at_threshold,
    roc_curve,
    select_threshold,
    wilson_interval,
)
from osteo.evaluation.triage import TriageRule, apply_triage, choose_triage

__all__ = [
    "DEFAULT_PRIMARY",
    "AUCEstimate",
    "ClusteredAUC",
    "ClusteredPairedResult",
    "ComparisonPlan",
    "TriageRule",
    "apply_triage",
    "bootstrap_rates",
    "choose_triage",
    "clustered_auc",
    "clustered_covariance",
    "clustered_paired_test",
    "decision_curve",
    "fit_recalibration",
    "model_key",
    "net_benefit",
    "patient_index_bootstrap",
    "plan_comparisons",
    "prior_shift_correct",
    "seed_summary",
    "BinaryMetrics",
    "BootstrapResult",
    "CalibrationFit",
    "ComparisonResult",
    "EvaluationInputError",
    "PairedDeLongResult",
    "ReliabilityBins",
    "Run",
    "SubgroupAUC",
    "age_band_names",
    "age_bands",
    "binary_metrics_at_threshold",
    "bootstrap_auc_ci",
    "build_comparison_table",
    "calibration_slope_intercept",
    "check_binary_inputs",
    "compare_runs",
    "compute_run_metrics",
    "delong_auc",
    "delong_covariance",
    "delong_paired_test",
    "evaluate_run",
    "expected_calibration_error",
    "format_comparison_markdown",
    "format_summary_table",
    "holm_adjust",
    "load_predictions",
    "load_readers",
    "load_run",
    "midranks",
    "patient_bootstrap",
    "reliability_bins",
    "roc_auc",
    "roc_curve",
    "run_name",
    "select_threshold",
    "subgroup_aucs",
    "summary_rows",
    "wilson_interval",
]
