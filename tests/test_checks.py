"""The reference checks that ship with reglab (reglab.checks)."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from reglab import checks


@pytest.mark.slow
def test_sweeps_reproduce_closed_form_ridge_on_diabetes_with_both_engines():
    table = checks.ridge()
    assert list(table["engine"].value_counts().sort_index()) == [2, 1, 9]  # reference CV, refit, stacked CV
    assert sorted(table["l2"].unique()) == [0.03, 0.1, 0.5]
    worst = table["relative_error"].max()
    assert worst <= 1e-4, table


def test_the_check_can_fail_without_the_lambda_conversion():
    x, y = checks.diabetes()
    w, b = checks.closed_form_ridge(x, y, 0.1)  # alpha = n·λ = 44.2
    naive = Ridge(alpha=0.1, solver="cholesky").fit(x, y)  # Keras's λ taken for sklearn's alpha
    difference = np.linalg.norm(naive.coef_ - w) / np.linalg.norm(w)
    assert difference > 1e-2  # orders of magnitude above the 1e-4 the check requires
    # and the closed form satisfies the Keras objective's normal equations: 2/n·Xᵀ(Xw + b − y) + 2λw = 0
    gradient = 2 / len(y) * x.T @ (x @ w + b - y) + 2 * 0.1 * w
    assert np.abs(gradient).max() < 1e-10
