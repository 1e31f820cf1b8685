"""scikit-learn's own estimator checks (sklearn.utils.estimator_checks)."""
import warnings

import pytest
from sklearn.utils.estimator_checks import check_estimator

from robustflow import RobustClassifier, RobustRegressor

# Checks robustflow skips (also listed in the estimators' docstrings and the README):
# none. scikit-learn itself skips check_array_api_input (needs SCIPY_ARRAY_API=1) and does
# not run the sample-weight checks, as fit() takes no sample_weight.
SKIPPED = {}


@pytest.mark.parametrize("est", [RobustClassifier(), RobustRegressor(),
                                 RobustClassifier(ambiguity="wasserstein", w1_norm="l2",
                                                  radius=0.1)],
                         ids=["classifier", "regressor", "w1-classifier"])
def test_check_estimator(est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, expected_failed_checks=SKIPPED, on_fail=None)
    failed = [r for r in results if r["status"] == "failed"]
    assert not failed, "\n".join(f"{r['check_name']}: {r['exception']!r}" for r in failed)
    assert sum(r["status"] == "passed" for r in results) >= 45
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= {"check_array_api_input"}, skipped
