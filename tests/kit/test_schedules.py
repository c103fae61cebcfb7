"""λ schedules: the penalty follows the schedule inside one compiled fit, with no retracing."""

import keras
import numpy as np
import pytest
from conftest import mlp

import reglab
from reglab.kit.regularizers import L2
from reglab.kit.schedules import (
    Constant,
    CosineWarmup,
    LinearWarmup,
    Scheduled,
    Step,
    StrengthScheduler,
    get,
    set_epoch,
)

pytestmark = pytest.mark.both_backends  # on JAX the scale must be part of the step's state (`track_scales`)


def test_schedule_values():
    assert [LinearWarmup(4, start=0.2)(e) for e in (0, 2, 4, 9)] == pytest.approx([0.2, 0.6, 1.0, 1.0])
    assert [CosineWarmup(4)(e) for e in (0, 1, 2, 3, 4)] == pytest.approx([0, 0.1464466, 0.5, 0.8535534, 1.0])
    assert [Step([1, 3], [1.0, 0.5, 0.1])(e) for e in range(5)] == [1.0, 0.5, 0.5, 0.1, 0.1]
    assert Constant(0.3)(17) == 0.3
    assert isinstance(get(0.5), Constant) and isinstance(get({"name": "linear_warmup", "epochs": 3}), LinearWarmup)
    with pytest.raises(ValueError, match="Received: schedule='fast'"):
        get("fast")


class CountingL2(L2):
    """L2 that counts how often Python runs it: once per trace of a compiled step, not per step."""

    calls = 0

    def __call__(self, x):
        CountingL2.calls += 1
        return super().__call__(x)


def test_penalty_follows_the_schedule_within_one_fit_without_retracing(digits):
    x, y = digits
    lam = 0.01
    scheduled = Scheduled(CountingL2(lam), LinearWarmup(epochs=3))
    model = reglab.regularize(mlp(), kernel=scheduled, layers=[0])
    # lr = 0 keeps the weights fixed, so the loss changes only through the schedule
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    kernel = model.layers[0].kernel.numpy()
    full_penalty = lam * np.square(kernel).sum()

    traces_after_epoch = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: traces_after_epoch.append(CountingL2.calls))
    CountingL2.calls = 0
    history = model.fit(x, y, epochs=5, batch_size=128, verbose=0, callbacks=[StrengthScheduler(), record])

    losses = np.array(history.history["loss"])
    expected_scales = np.array([0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(losses - losses[0], expected_scales * full_penalty, rtol=1e-4, atol=1e-6)
    assert traces_after_epoch[0] >= 1 and len(set(traces_after_epoch)) == 1  # traced in epoch 1, never again


def test_ledger_records_scale_and_scheduled_penalty_during_real_training(digits):
    x, y = digits
    model = reglab.regularize(mlp(), kernel=Scheduled(L2(0.01), Step([2], [0.0, 1.0])))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ledger = reglab.LossLedger()
    model.fit(x, y, epochs=4, verbose=0, callbacks=[ledger, StrengthScheduler()])  # order does not matter
    table = ledger.history
    scales = table[[c for c in table.columns if c.startswith("scale:")]]
    assert scales.shape[1] == 2
    np.testing.assert_array_equal(scales.iloc[:, 0], [0.0, 0.0, 1.0, 1.0])
    assert (table.train_penalty.iloc[:2] == 0).all() and (table.train_penalty.iloc[2:] > 0.01).all()


def test_set_epoch_for_custom_loops_and_the_shared_variable():
    shared = Scheduled(L2(0.1), LinearWarmup(2))
    model = reglab.regularize(mlp(n_in=4, n_out=2, hidden=(3,)), kernel=shared)
    assert float(reglab.regularization_loss(model)) == 0.0
    scales = set_epoch(model, 1)
    assert set(scales.values()) == {0.5} and len(scales) == 2  # one shared regularizer, two terms
    kernels = [v.numpy() for v in model.trainable_weights if v.regularizer is not None]
    expected = 0.5 * 0.1 * sum(np.square(k).sum() for k in kernels)
    assert float(reglab.regularization_loss(model)) == pytest.approx(expected, rel=1e-6)


def test_the_scale_is_step_state_not_a_weight_and_moves_between_fits(digits, tmp_path):
    # On JAX a scale outside the model's state would be frozen in the compiled steps at its first value.
    x, y = digits
    lam = 0.01
    model = reglab.regularize(mlp(), kernel=Scheduled(L2(lam), Step([1], [0.0, 1.0])), layers=[0])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    weights = len(model.weights)
    model.fit(x, y, epochs=1, batch_size=256, verbose=0, callbacks=[StrengthScheduler()])
    before = model.evaluate(x, y, batch_size=256, verbose=0)
    set_epoch(model, 1)  # full strength, after both steps were compiled at scale 0
    after = model.evaluate(x, y, batch_size=256, verbose=0)
    assert after - before == pytest.approx(lam * np.square(model.layers[0].kernel.numpy()).sum(), rel=1e-4)
    assert len(model.weights) == weights  # state of the step, not a weight: saving is unchanged
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [w.shape for w in loaded.weights] == [w.shape for w in model.weights]
