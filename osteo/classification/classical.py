"""The authors' second stage, for comparison: LASSO selection, then a soft-voting ensemble.

Kim et al. fed the frozen features (deep, radiomics, clinical; concatenated by the caller)
to an L1-penalised logistic regression that keeps the features with a non-zero coefficient,
then averaged the probabilities of a random forest, gradient boosting and AdaBoost trained on
those features. :class:`StackingEnsemble` reproduces that on numpy arrays with a scikit-learn
style ``fit`` / ``predict_proba`` API, seeded so a run is repeatable.
"""

from __future__ import annotations

import logging

import numpy as np
import sklearn
from sklearn.ensemble import (
    AdaBoostClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

__all__ = ["StackingEnsemble", "lasso_logistic_regression"]

log = logging.getLogger(__name__)


def lasso_logistic_regression(C: float, seed: int) -> LogisticRegression:
    """An L1 logistic regression, spelled for the installed scikit-learn.

    scikit-learn 1.8 deprecated ``penalty`` in favour of ``l1_ratio``; older versions ignore
    ``l1_ratio`` unless ``penalty="elasticnet"``.
    """
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    penalty = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(
        C=C,
        solver="liblinear",
        class_weight="balanced",
        random_state=seed,
        max_iter=1000,
        **penalty,
    )


class StackingEnsemble:
    """LASSO feature selection -> soft vote of RandomForest, GradientBoosting, AdaBoost.

    ``lasso_c`` is the inverse L1 strength (smaller keeps fewer features). When it keeps none,
    the ``min_features`` largest coefficients of a weaker penalty are kept instead, so the
    ensemble always has something to learn from (logged).
    """

    def __init__(
        self,
        lasso_c: float = 0.1,
        n_estimators: int = 200,
        min_features: int = 1,
        seed: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.lasso_c = lasso_c
        self.n_estimators = n_estimators
        self.min_features = min_features
        self.seed = seed
        self.n_jobs = n_jobs

    def fit(self, features: np.ndarray, labels: np.ndarray) -> StackingEnsemble:
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels).astype(int).ravel()
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"features {x.shape} and labels {y.shape} do not match")
        if len(np.unique(y)) != 2:
            raise ValueError("the stacking ensemble needs both classes in the training labels")
        self.scaler_ = StandardScaler().fit(x)
        x = self.scaler_.transform(x)
        self.selected_ = self._select(x, y)
        self.ensemble_ = VotingClassifier(
            estimators=[
                (
                    "random_forest",
                    RandomForestClassifier(
                        n_estimators=self.n_estimators,
                        class_weight="balanced",
                        random_state=self.seed,
                        n_jobs=self.n_jobs,
                    ),
                ),
                (
                    "gradient_boosting",
                    GradientBoostingClassifier(
                        n_estimators=self.n_estimators, random_state=self.seed
                    ),
                ),
                (
                    "adaboost",
                    AdaBoostClassifier(n_estimators=self.n_estimators, random_state=self.seed),
                ),
            ],
            voting="soft",
        ).fit(x[:, self.selected_], y)
        return self

    def _select(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Indices of the features LASSO keeps (non-zero coefficient)."""
        lasso = lasso_logistic_regression(self.lasso_c, self.seed).fit(x, y)
        coef = np.abs(lasso.coef_.ravel())
        selected = np.flatnonzero(coef > 0)
        if len(selected) < self.min_features:
            kept = len(selected)
            weaker = lasso_logistic_regression(self.lasso_c * 100, self.seed).fit(x, y)
            coef = np.abs(weaker.coef_.ravel())
            selected = np.sort(np.argsort(-coef)[: self.min_features])
            log.warning(
                "LASSO (C=%g) kept %d features; keeping the %d strongest instead",
                self.lasso_c,
                kept,
                len(selected),
            )
        return selected

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``[n, 2]`` class probabilities (column 1: osteoporosis)."""
        if not hasattr(self, "ensemble_"):
            raise RuntimeError("call fit() before predict_proba()")
        x = self.scaler_.transform(np.asarray(features, dtype=np.float64))
        return self.ensemble_.predict_proba(x[:, self.selected_])
