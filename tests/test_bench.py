"""`reglab bench --quick`: the report's structure and that reglab and sequential Keras agree (never speed)."""

import json
import subprocess
import sys

import pytest

from reglab.bench import forward_flops, sklearn_alpha, workload_flops


def test_flop_count_of_the_standard_workload():
    # BENCHMARK.md: ~318 GFLOP for 40 members × 50 epochs on digits (1,797 samples, 5 folds)
    total = workload_flops(1797 * 4 / 5, 1797 / 5, 50, 40)
    assert forward_flops() == 2 * (64 * 128 + 128 * 64 + 64 * 10)
    assert total / 1e9 == pytest.approx(318, rel=0.01)


def test_sklearn_alpha_conversion_matches_sklearns_own_batch_loss():
    """sklearn's MLP adds alpha/(2·batch)·Σw² per batch: alpha = 2·batch·λ gives Keras's λ·Σw²."""
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)), rng.integers(0, 3, 32)
    strength = 1e-2
    mlp = MLPClassifier(hidden_layer_sizes=(4,), alpha=sklearn_alpha(strength, 32), max_iter=1, batch_size=32)
    mlp.partial_fit(x, y, classes=[0, 1, 2])
    plain = MLPClassifier(hidden_layer_sizes=(4,), alpha=0.0, max_iter=1, batch_size=32)
    plain.partial_fit(x, y, classes=[0, 1, 2])
    # evaluate both losses at the same weights with sklearn's own backprop
    def batch_loss(model):
        activations = [x] + [None] * (model.n_layers_ - 1)
        deltas = [None] * (len(activations) - 1)
        coef_grads = [np.empty_like(c) for c in mlp.coefs_]
        intercept_grads = [np.empty_like(c) for c in mlp.intercepts_]
        model.coefs_, model.intercepts_ = [c.copy() for c in mlp.coefs_], [c.copy() for c in mlp.intercepts_]
        import inspect

        extra = {"sample_weight": None} if "sample_weight" in inspect.signature(model._backprop).parameters else {}
        loss, *_ = model._backprop(X=x, y=np.eye(3)[y], activations=activations, deltas=deltas,
                                   coef_grads=coef_grads, intercept_grads=intercept_grads, **extra)
        return loss

    penalty = batch_loss(mlp) - batch_loss(plain)
    assert penalty == pytest.approx(strength * sum(np.square(c).sum() for c in mlp.coefs_), rel=1e-9)


@pytest.mark.slow
def test_quick_bench_reports_every_key_and_engines_agree(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "reglab", "bench", "--quick", "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for key in ("speedup_vs_sequential_keras", "speedup_vs_sklearn", "ratio_to_flop_bound", "reglab_seconds",
                "compile_seconds", "peak_rss_mb", "accuracy_by_lambda"):
        assert key in report and report[key] is not None, key
    assert all(report[k] > 0 for k in ("reglab_seconds", "sequential_keras_seconds", "sklearn_seconds", "flop_bound_seconds"))
    accuracy = report["accuracy_by_lambda"]
    assert set(accuracy["reglab"]) == set(accuracy["keras"]) == {"0", "0.0003", "0.01"}
    for strength, value in accuracy["keras"].items():  # same maths, different engines: close (4 epochs, one fold)
        assert abs(value - accuracy["reglab_fold0"][strength]) < 0.05, strength
    assert "reglab bench" in result.stdout and "sequential Keras" in result.stdout
