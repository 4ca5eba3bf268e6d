"""Stage 6: metrics.json, report.md and plots of the run, from its predictions.csv.

The same functions as ``tools/evaluate.py`` (osteo.evaluation.report), so the main command,
the tool and W&B report one set of numbers.
"""

from __future__ import annotations

from osteo.constants import EVALUATED_SPLITS
from osteo.pipeline.context import RunContext

__all__ = ["run_evaluation_stage"]


def run_evaluation_stage(ctx: RunContext) -> dict:
    from osteo.evaluation.decision_curve import dca_thresholds
    from osteo.evaluation.report import evaluate_run

    train, evaluation = ctx.cfg.train, ctx.cfg.evaluation
    with ctx.stage("evaluation") as record:
        metrics = evaluate_run(
            ctx.run_dir,
            threshold_method=train.threshold_method,
            target_sensitivity=train.target_sensitivity,
            n_bootstrap=train.n_bootstrap,
            seed=ctx.cfg.seed,
            recalibration=evaluation.recalibration,
            triage_npv=evaluation.triage_npv,
            triage_ppv=evaluation.triage_ppv,
            dca_thresholds=dca_thresholds(evaluation.dca_max_threshold),
        )
        record.status = "ran"
        record.figures = {
            split: {
                k: metrics[split].get(k)
                for k in ("auc", "auc_ci", "sensitivity", "specificity", "n", "n_positive")
            }
            for split in EVALUATED_SPLITS
            if split in metrics
        }
        return metrics
