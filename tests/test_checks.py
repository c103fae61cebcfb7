"""The reference checks that ship with reglab (reglab.checks)."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from reglab import checks


@pytest.mark.slow
def test_sweeps_reproduce_closed_form_ridge_on_diabetes_with_both_engines():
    # The reference engine (one Keras `fit` epoch ~70 ms) gets 60 full-batch epochs instead of the default 80; the
    # population part keeps its 1000 (~2 s in all). At λ = 0.5 the error falls ~10× per 10 epochs (measured: 1e-3 at 20,
    # 1e-4 at 30) and reaches float32's floor by 60 (≤ 3e-7, as at 80): the 1e-4 bound still tests convergence.
    table = checks.ridge(reference_epochs=60)
    assert list(table["engine"].value_counts().sort_index()) == [9, 2, 1]  # population CV, reference CV, refit
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
