"""The population engine: each member is `model.fit` (JAX backend) of the same model with the same seed,
initial weights and batch order, for every model family; members are isolated.

These tests run in the JAX pass of `python3 tasks.py test` (KERAS_BACKEND=jax).
"""

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import NaNGradient
from keras import layers as L

from reglab import data as D
from reglab import zoo
from reglab.engine import convolution, population, row_independence
from reglab.engine.batches import default_order
from reglab.engine.grouping import signature
from reglab.engine.training import Training, compile_model
from reglab.kit import regularizers as R
from reglab.kit.schedules import LinearWarmup, Scheduled
from reglab.search import plan

X, _, Y = zoo.digits()
FAMILIES = zoo.families()
mlp_dropout = zoo.mlp_dropout


def setup(x, n=300, folds=2, lambdas=(0.0, 1e-2), seed=0):
    dataset = D.prepare(D.rows(x, slice(0, n)), Y[:n])
    rest, _ = D.split_test(dataset, None, seed, True)
    members = plan.members([{"l2": v} for v in lambdas], D.folds(dataset, rest, folds, 1, seed, True), seed)
    return dataset, members


def training(optimizer="adam", lr=1e-3, epochs=3):
    return Training(
        epochs=epochs,
        batch_size=32,
        optimizer=optimizer,
        learning_rate=lr,
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        standardize=False,
    )


def fit(build, member, dataset, setting):
    """`model.fit` of the member's model, built under its seed (as both engines do), in the population's batch order."""
    keras.backend.clear_session(free_memory=False)
    plan.set_global_seed(member.seed)
    model = build(member.point)
    compile_model(model, setting, member.point)
    callbacks = [keras.callbacks.LambdaCallback()]
    history = []
    for epoch in range(setting.epochs):
        order = default_order(member, epoch)
        h = model.fit(
            D.rows(dataset.x, order),
            D.rows(dataset.y, order),
            batch_size=setting.batch_size,
            shuffle=False,
            epochs=epoch + 1,
            initial_epoch=epoch,
            verbose=0,
            callbacks=callbacks,
            validation_data=(D.rows(dataset.x, member.val), D.rows(dataset.y, member.val)),
            validation_batch_size=len(member.val),
        )
        history.append({k: v[-1] for k, v in h.history.items()})
    return {v.path: np.asarray(v.value) for v in model.trainable_variables}, pd.DataFrame(history)


def assert_equivalent(build, x, setting, members_checked=(0, -1), **kwargs):
    """Train the members as one population and check members `members_checked` against `model.fit`."""
    dataset, members = setup(x, **kwargs)
    (pop,), failures = population.plan_populations(members, build, probe=D.rows(dataset.x, slice(0, 1)))
    assert not failures
    records, weights, _ = population.train_population(pop, dataset, setting)
    for m in members_checked:  # both λ, both folds (the folds differ in size: two partial-batch shapes)
        member = members[m]
        expected, history = fit(build, member, dataset, setting)
        assert expected.keys() == weights[member.id].keys()
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5
        ours = records[member.id]
        np.testing.assert_allclose(ours.train_total, history["loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.val_total, history["val_loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.train_accuracy, history["accuracy"], atol=1e-6)
        np.testing.assert_allclose(ours.val_accuracy, history["val_accuracy"], atol=1e-6)
        penalty = ours.filter(like="penalty:").sum(axis=1)
        np.testing.assert_allclose(penalty, ours.train_penalty, rtol=1e-5, atol=1e-7)  # the terms add up
    return {m.point["l2"]: records[m.id] for m in members}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_every_model_family_trains_exactly_as_model_fit(family):
    """Each family's regularized member (λ = 1e-2, second fold) against `fit` (each `fit` compiles its own:
    the most of these tests' time); the MLP's members of both λ and both folds."""
    build, x = FAMILIES[family]
    by_lambda = assert_equivalent(build, x, training(), members_checked=(0, -1) if family == "mlp-dropout" else (-1,))
    assert (by_lambda[1e-2].train_penalty > by_lambda[0.0].train_penalty).all()


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, lr", [("sgd", 1e-2), ("rmsprop", 1e-3), ("adamw", 1e-3), ("nadam", 1e-3)])
def test_any_keras_optimizer(optimizer, lr):
    assert_equivalent(mlp_dropout, X, training(optimizer, lr), members_checked=(-1,))


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", [{"l2": 0.0, "weight_decay": 0.05}, {"l2": 0.0, "prox_l1": 1e-3}], ids=["weight-decay", "proximal-l1"]
)
def test_what_a_point_asks_of_the_optimizer(point):
    """Decoupled decay and the proximal step (`reglab.kit.optimizers.Proximal`) are the optimizer's own."""
    dataset, members = setup(X)
    members = [plan.Member(m.id, point, m.point_id, m.fold, m.repeat, m.seed, m.train, m.val) for m in members[:2]]
    (pop,), _ = population.plan_populations(members, mlp_dropout)
    setting = training()
    records, weights, _ = population.train_population(pop, dataset, setting)
    for member in members:
        expected, history = fit(mlp_dropout, member, dataset, setting)
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5
    if "prox_l1" in point:
        assert (weights[members[0].id]["net/h1/kernel"] == 0).mean() > 0.05  # exact zeros, as with fit


def test_a_population_whose_strengths_are_all_zero_reports_zero_terms():
    dataset, members = setup(X, lambdas=(0.0,))
    (pop,), _ = population.plan_populations(members, mlp_dropout)
    records, _, _ = population.train_population(pop, dataset, training(epochs=1))
    table = records[members[0].id]
    assert (table["penalty:net/h1/kernel"] == 0).all() and (table["penalty:h2/activity"] > 0).all()


def test_scheduled_penalties_follow_their_schedule_per_member():
    def build(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                L.Dense(16, activation="relu", kernel_regularizer=Scheduled(R.L2(point["l2"]), LinearWarmup(3))),
                L.Dense(10, activation="softmax"),
            ]
        )

    dataset, members = setup(X, lambdas=(1e-2,), folds=2)
    (pop,), _ = population.plan_populations(members, build)
    records, weights, _ = population.train_population(pop, dataset, training(epochs=3))
    scales = records[members[0].id].filter(like="scale:").iloc[:, 0].tolist()
    assert scales == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert records[members[0].id].train_penalty.iloc[0] == 0.0 < records[members[0].id].train_penalty.iloc[1]


def test_points_share_one_population_and_one_compilation():
    dataset, members = setup(X, lambdas=(0.0, 1e-4, 1e-2, 1.0), folds=2)
    pops, _ = population.plan_populations(members, mlp_dropout)
    assert len(pops) == 1 and len(pops[0].members) == 8
    _, _, timing = population.train_population(pops[0], dataset, training(epochs=2))
    assert len(timing["epoch_seconds"]) == 2 and timing["compile_seconds"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("family", zoo.keras_io_families())
def test_keras_io_sized_models_train_exactly_as_model_fit(family):
    """keras-io's time-series FCN, MNIST convnet and a small ResNet at their sizes (a few rows, 2 epochs),
    with SGD: under Adam, a bias-free convolution before BatchNormalization (which makes the loss blind to
    the kernel's scale) has gradient entries that are rounding noise, which Adam scales to steps of the
    learning rate — one FCN member and one ResNet member differed from `fit` by 1.7e-4 after 2 epochs
    while every convolution is `fit`'s bit for bit (the test below). The zoo's own conv + BatchNorm
    families are checked under Adam."""
    build, x = zoo.keras_io_families()[family]
    assert_equivalent(build, x, training("sgd", 1e-2, epochs=2), members_checked=(-1,), n=120)


@pytest.mark.parametrize("channels", [1, 64])
def test_a_convolution_in_the_epochs_loop_computes_what_fit_computes_bit_for_bit(channels):
    """Forward, input gradient and weight gradient of a Conv1D inside a `lax.scan` (a population's epoch),
    as `engine.convolution` issues them, equal one step at a program's top level (`fit`'s) exactly; as JAX
    emits it, the weight gradient falls to XLA's naive emitter inside the loop and rounds otherwise."""
    import jax

    x = jax.random.normal(jax.random.key(0), (2, 32, 64, channels))
    w = jax.random.normal(jax.random.key(1), (3, channels, 64)) * 0.1
    g = jax.random.normal(jax.random.key(2), (2, 32, 64, 64))
    settings = (((1,), "SAME"), {"dimension_numbers": ("NWC", "WIO", "NWC")})
    ours = lambda x, w: convolution._Convolution(*settings)(x, w)  # noqa: E731
    theirs = lambda x, w: jax.lax.conv_general_dilated(x, w, *settings[0], **settings[1])  # noqa: E731

    def step(conv):
        def one(x, g):
            y, back = jax.vjp(conv, x, w)
            return (y, *back(g))

        return one

    top = jax.jit(step(theirs))(x[0], g[0])
    looped = jax.jit(lambda x, g: jax.lax.scan(lambda c, a: (c, step(ours)(*a)), 0, (x, g))[1])(x, g)
    for expected, got in zip(top, looped):
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(expected))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", convolution.STRATEGIES)
def test_every_way_of_batching_convolutions_trains_exactly_as_model_fit(monkeypatch, strategy):
    """Members one after another unrolled, in a `lax.map` loop, or as one grouped convolution (`vmap`),
    each convolution issued in Eigen's order: each member is still `model.fit` (a Conv1D + BatchNorm model,
    with partial-batch segments of their own shape); and the program keeps which way it took (forced here;
    measured by default, as every family's test above runs)."""
    monkeypatch.setenv("REGLAB_CONV_BATCHING", strategy)
    build, x = FAMILIES["conv1d-batchnorm"]
    timings = []
    spy = population._train

    def keep_timing(*args, **kwargs):
        out = spy(*args, **kwargs)
        timings.append(out[2])
        return out

    monkeypatch.setattr(population, "_train", keep_timing)
    assert_equivalent(build, x, training(), n=200)
    used = {d["strategy"] for d in timings[0]["convolutions"].values()}
    assert used == {strategy}


def test_a_wrong_convolution_batching_is_refused_before_any_tracing(monkeypatch):
    monkeypatch.setenv("REGLAB_CONV_BATCHING", "grouped")
    with pytest.raises(ValueError, match="REGLAB_CONV_BATCHING=.grouped."):
        with convolution.per_member_on_cpu():
            pass


@pytest.mark.parametrize(
    "family, lambdas",
    [("mlp-dropout", (0.0, 1e-4, 1e-2)), ("conv1d-batchnorm", (0.0, 1e-2))],
    ids=["padded, a shard filled up with a copy", "partial-batch segments"],
)
def test_shards_side_by_side_train_each_member_as_one_program_does(monkeypatch, family, lambdas):
    """A population split into shards that run in threads of their own (one compiled program for all):
    every member's records and weights are those of the unsplit population (to float32 rounding: XLA's
    programs for 5 and 9 members round differently)."""
    build, x = FAMILIES[family]
    dataset, members = setup(x, n=150, folds=3, lambdas=lambdas)  # 9 or 6 members, folds of 50 and 49 rows
    split = population.shard
    monkeypatch.setattr(population, "shard", lambda *args, count, smallest: split(*args, count=count, smallest=3))
    runs = {}
    for count in (1, 2):
        monkeypatch.setattr(population, "shard_count", lambda count=count: count)
        (pop,), _ = population.plan_populations(members, build, probe=D.rows(dataset.x, slice(0, 1)))
        runs[count] = population.train_population(pop, dataset, training(epochs=2))
    assert runs[1][2]["shards"] == 1 and runs[2][2]["shards"] == 2
    for member in members:
        pd.testing.assert_frame_equal(runs[1][0][member.id], runs[2][0][member.id], check_exact=False, rtol=1e-6)
        for path, w in runs[1][1][member.id].items():
            np.testing.assert_allclose(runs[2][1][member.id][path], w, rtol=1e-6, atol=1e-7)


def test_a_population_that_does_not_fit_in_memory_trains_in_halves_each_member_as_before(monkeypatch):
    """XLA's RESOURCE_EXHAUSTED (a device out of memory; stood in for here, this suite has no GPU) splits the
    population in two, and a half again where it must: one warning, and every member's records and
    weights are those of the whole population (to float32 rounding, as for shards)."""
    dataset, members = setup(X, n=150, folds=2)  # 4 members
    (pop,), _ = population.plan_populations(members, mlp_dropout)
    whole = population.train_population(pop, dataset, training(epochs=2))
    real, sizes = population._train_population, []

    def tight(part, *args):
        sizes.append(len(part.members))
        if len(part.members) > 1:  # 4 -> 2 -> 1 + 1: each program compiled is of one member
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1073741824 bytes.")
        return real(part, *args)

    monkeypatch.setattr(population, "_train_population", tight)
    (pop,), _ = population.plan_populations(members, mlp_dropout)  # fresh models: the first run wrote back
    with pytest.warns(UserWarning, match=r"population of 4 members did not fit .*RESOURCE_EXHAUSTED") as told:
        parts = population.train_population(pop, dataset, training(epochs=2))
    assert len(told) == 1 and sizes == [4, 2, 1, 1, 2, 1, 1] and parts[2]["members"] == 4
    for member in members:
        pd.testing.assert_frame_equal(whole[0][member.id], parts[0][member.id], check_exact=False, rtol=1e-6)
        for path, w in whole[1][member.id].items():
            np.testing.assert_allclose(parts[1][member.id][path], w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bad_lambda", [1e4, -1.0], ids=["loss-explodes", "finite-loss-nan-gradient"])
def test_a_diverging_member_is_frozen_and_leaves_the_others_bit_for_bit_unchanged(bad_lambda):
    setting = training("sgd", 0.05, epochs=4)

    def build(point):
        penalty = NaNGradient() if point["l2"] < 0 else R.L2(point["l2"])
        return keras.Sequential(
            [
                keras.Input((64,)),
                L.Dense(16, activation="relu", kernel_regularizer=penalty),
                L.Dense(10, activation="softmax"),
            ]
        )

    def run(bad):
        dataset, members = setup(X, lambdas=(0.0, 1e-3, bad))
        pops, _ = population.plan_populations(members, build)
        out = {}
        for pop in pops:
            records, weights, _ = population.train_population(pop, dataset, setting)
            out.update({mid: (records[mid], weights[mid]) for mid in records})
        return members, out

    members, with_bad = run(bad_lambda)
    _, with_good = run(1e-2)  # the same population size, the third point harmless
    for member in members[-2:]:
        table, weights = with_bad[member.id]
        assert table.status.iloc[-1] == "diverged" and len(table) < setting.epochs
        assert all(np.isfinite(w).all() for w in weights.values())  # frozen at its last finite state
    for member in members[:4]:
        pd.testing.assert_frame_equal(with_bad[member.id][0], with_good[member.id][0])
        for path, w in with_bad[member.id][1].items():
            assert np.array_equal(w, with_good[member.id][1][path])
        assert (with_bad[member.id][0].status == "ok").all()


@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_dropout_masks_are_drawn_per_member(rate):
    """Two members with the same initial weights (fixed initializer seeds) and batches, different member
    seeds: their weights part after one epoch exactly when dropout is on."""
    dataset, members = setup(X, lambdas=(0.0,), folds=2)
    twins = [
        plan.Member(f"twin{s}", members[0].point, members[0].point_id, 0, 0, s, members[0].train, members[0].val)
        for s in (1, 2)
    ]

    def build(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                L.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(0)),
                L.Dropout(rate),
                L.GaussianNoise(rate),
                L.Dense(10, activation="softmax", kernel_initializer=keras.initializers.GlorotUniform(1)),
            ]
        )

    (pop,), _ = population.plan_populations(twins, build)
    _, weights, _ = population.train_population(pop, dataset, training(epochs=1), order=lambda m, e: m.train)
    a, b = (weights[t.id][pop.models[0].trainable_variables[0].path] for t in twins)
    assert np.array_equal(a, b) == (rate == 0.0)


@pytest.mark.slow
def test_points_differing_in_learning_rate_decay_proximal_strength_and_dropout_train_in_one_population():
    """A dropout rate, learning rate, weight decay and proximal strength are per-member values of one
    compiled program, and each member is still `model.fit` of its own point. (A rate of 0 is another
    architecture: Keras's Dropout(0) has no random state.)"""
    from reglab.models import MLP

    build = MLP(hidden=[32, 16]).bind(64, 10)
    dataset, members = setup(X)
    points = [
        {"l2": 1e-3, "dropout": 0.1, "learning_rate": 1e-3, "weight_decay": 0.0, "prox_l1": 0.0},
        {"l2": 1e-2, "dropout": 0.3, "learning_rate": 3e-3, "weight_decay": 0.05, "prox_l1": 1e-3},
    ]
    members = [
        plan.Member(m.id, points[i % 2], m.point_id, m.fold, m.repeat, m.seed, m.train, m.val)
        for i, m in enumerate(members)
    ]
    pops, _ = population.plan_populations(members, build)
    assert len(pops) == 1
    setting = training()
    records, weights, timing = population.train_population(pops[0], dataset, setting)
    assert timing["members"] == len(members)
    assert {(m.point["dropout"], m.fold) for m in members[:2]} == {(0.1, 0), (0.3, 1)}
    for member in members[:2]:  # both points, both folds (each `fit` compiles its own: a few seconds each)
        expected, history = fit(build, member, dataset, setting)
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5
        np.testing.assert_allclose(records[member.id].val_total, history["val_loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_layer_that_needs_its_rate_as_a_number_trains_one_population_per_rate():
    def build(point):  # GaussianDropout computes math.sqrt(rate / (1 - rate)) in Python
        return keras.Sequential(
            [
                keras.Input((64,)),
                L.Dense(16, activation="relu"),
                L.GaussianDropout(0.1 if point["l2"] else 0.4),
                L.Dense(10, activation="softmax"),
            ]
        )

    dataset, members = setup(X)
    (pop,), _ = population.plan_populations(members, build)
    setting = training(epochs=2)
    records, weights, timing = population.train_population(pop, dataset, setting)
    assert len(records) == len(members) and timing["members"] == len(members)
    for member in members[:2]:
        expected, _ = fit(build, member, dataset, setting)
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5


@pytest.mark.slow
def test_partial_batches_are_padded_exactly_where_the_step_ignores_the_other_rows(monkeypatch, tmp_path):
    """`row_independent` decides between one padded step body and exact partial-batch shapes; the
    equivalence tests above then cover both paths."""
    monkeypatch.setattr(row_independence, "_ANSWERS", {})  # each answer probed here, none remembered from before
    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path))  # nor read from the disk (`traces`)

    def plain_mlp(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                L.Dense(16, activation="relu", kernel_regularizer=R.L2(point["l2"])),
                L.Dense(10, activation="softmax"),
            ]
        )

    # (training, evaluation). Dropout is row-independent: JAX's threefry draws each element from its
    # position, so the real rows' draws do not depend on the rows after them. What is not:
    expected = {name: (True, True) for name in [*FAMILIES, "plain-mlp"]}
    # (mlp-dropout's activity penalty counts the real rows only: `_Recorded`)
    for name in ("resnet-batchnorm", "conv1d-batchnorm"):
        expected[name] = (False, True)  # BatchNormalization's batch statistics, in training only
    cases = {**FAMILIES, "plain-mlp": (plain_mlp, X)}
    for name, (build, x) in cases.items():
        dataset, members = setup(x, n=100)
        (pop,), _ = population.plan_populations(members, build, probe=D.rows(dataset.x, slice(0, 1)))
        head = D.rows(dataset.x, slice(0, 32))
        program = population.Program(pop, training(), (head, dataset.y[:32]))
        try:
            got = program.row_independent(head, dataset.y[:32].astype("int32"))
        finally:
            program.release()
        assert got == expected[name], name


def test_an_architecture_is_probed_once_a_process_a_refit_or_another_loss_is_not_fooled(monkeypatch, tmp_path):
    """`row_independent`'s answer is remembered by what decides it (the architecture, the loss and metrics, a
    row's shapes): a second population of the same model — other λ, other rows, the refit — is not probed
    again and trains as `fit` does; other metrics are another key; a BatchNormalization model is probed."""
    monkeypatch.setattr(row_independence, "_ANSWERS", {})
    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path))  # no answer on the disk yet (`traces`)
    probes = []
    real = row_independence.close
    monkeypatch.setattr(row_independence, "close", lambda a, b: probes.append(1) or real(a, b))
    by_lambda = assert_equivalent(mlp_dropout, X, training(epochs=1), members_checked=(), n=200)
    first = len(probes)
    assert first > 0 and len(row_independence._ANSWERS) == 1 and by_lambda
    assert_equivalent(mlp_dropout, X, training(epochs=2), members_checked=(-1,), n=300, lambdas=(1e-3, 1e-1))
    assert len(probes) == first and list(row_independence._ANSWERS.values()) == [(True, True)]
    other = Training(**{**training().__dict__, "metrics": ("accuracy", "sparse_top_k_categorical_accuracy")})
    dataset, members = setup(X, n=100)
    (pop,), _ = population.plan_populations(members, mlp_dropout)
    remembered = (
        signature(pop.models[0], members[0].point),
        repr(("sparse_categorical_crossentropy", ("accuracy",), None)),
    )
    program = population.Program(pop, other, (D.rows(dataset.x, slice(0, 32)), dataset.y[:32]))
    try:
        assert [key[:2] for key in row_independence._ANSWERS] == [remembered]  # what the first probe decided
        assert program.decided_by[0] == remembered[0] and program.decided_by != remembered
    finally:
        program.release()
    build, x = FAMILIES["resnet-batchnorm"]
    assert_equivalent(build, x, training(epochs=1), members_checked=(), n=100)
    assert len(probes) > first and (False, True) in row_independence._ANSWERS.values()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_metrics_people_use_are_those_of_fit(task):
    """AUC, precision and recall (binary cross-entropy, breast cancer); MAE, MSE and RMSE (diabetes):
    Keras's own metrics, weighted so that padding rows count nothing."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    if task == "binary":
        x, y = load_breast_cancer(return_X_y=True)
        loss, metrics, width, activation = "binary_crossentropy", ("auc", "precision", "recall"), 1, "sigmoid"
    else:
        x, y = load_diabetes(return_X_y=True)
        y = (y - y.mean()) / y.std()
        loss, metrics, width, activation = "mse", ("mae", "mse", "root_mean_squared_error"), 1, None
    x = ((x - x.mean(0)) / x.std(0)).astype("float32")[:300]

    def build(point):
        return keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                L.Dense(16, activation="relu", kernel_regularizer=R.L2(point["l2"])),
                L.Dense(width, activation=activation),
            ]
        )

    dataset = D.prepare(x, y[:300], "classification" if task == "binary" else "regression")
    rest, _ = D.split_test(dataset, None, 0, task == "binary")
    members = plan.members([{"l2": 0.0}, {"l2": 1e-2}], D.folds(dataset, rest, 2, 1, 0, task == "binary"), 0)
    setting = Training(
        epochs=3, batch_size=32, optimizer="adam", learning_rate=1e-2, loss=loss, metrics=metrics, standardize=False
    )
    (pop,), _ = population.plan_populations(members, build)
    records, weights, _ = population.train_population(pop, dataset, setting)
    for member in (members[0], members[-1]):
        expected, history = fit(build, member, dataset, setting)
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5
        names = [c for c in history.columns if c not in ("loss", "val_loss")]
        assert len(names) == 2 * len(metrics)
        for name in names:  # fit's "auc" is our "train_auc"
            ours = records[member.id][name if name.startswith("val_") else f"train_{name}"]
            np.testing.assert_allclose(ours, history[name], rtol=1e-5, atol=1e-6, err_msg=name)


def two_outputs(point):
    inputs = keras.Input((64,))
    h = L.Dense(16, activation="relu", kernel_regularizer=R.L2(point["l2"]))(inputs)
    return keras.Model(
        inputs, {"digit": L.Dense(10, activation="softmax", name="digit")(h), "ink": L.Dense(1, name="ink")(h)}
    )


def two_output_data(n=300):
    return D.prepare(X[:n], {"digit": Y[:n], "ink": X[:n].mean(axis=1)})


@pytest.mark.slow
def test_a_model_with_two_outputs_and_loss_weights_trains_exactly_as_model_fit():
    dataset = two_output_data()
    members = plan.members([{"l2": 0.0}, {"l2": 1e-2}], D.folds(dataset, np.arange(len(dataset)), 2, 1, 0, False), 0)
    setting = Training(
        epochs=3,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        loss={"digit": "sparse_categorical_crossentropy", "ink": "mse"},
        metrics={"digit": ["accuracy"], "ink": ["mae"]},
        standardize=False,
        loss_weights={"digit": 1.0, "ink": 0.5},
    )
    (pop,), _ = population.plan_populations(members, two_outputs)
    records, weights, _ = population.train_population(pop, dataset, setting)
    for member in (members[0], members[-1]):
        expected, history = fit(two_outputs, member, dataset, setting)
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5
        np.testing.assert_allclose(
            records[member.id].val_loss, history["val_loss"] - records[member.id].val_penalty, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(records[member.id].val_digit_accuracy, history["val_digit_accuracy"], atol=1e-6)
        np.testing.assert_allclose(records[member.id].train_ink_mae, history["ink_mae"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sweeps_over_models_with_several_inputs_or_outputs_select_refit_and_test():
    from reglab import Sweep

    build, x = FAMILIES["two-inputs"]
    result = Sweep(build, grid={"l2": [0.0, 1e-2]}, cv=2, epochs=4, learning_rate=1e-2, test_size=0.2, seed=0).run(
        D.rows(x, slice(0, 400)), Y[:400]
    )
    assert set(result.members.l2) == {0.0, 1e-2} and 0 <= result.test["accuracy"] <= 1
    assert result.model.predict(D.rows(x, slice(0, 5)), verbose=0).shape == (5, 10)

    dataset = two_output_data()
    result = Sweep(
        two_outputs,
        grid={"l2": [0.0, 1e-2]},
        cv=2,
        epochs=4,
        learning_rate=1e-2,
        test_size=0.2,
        seed=0,
        loss={"digit": "sparse_categorical_crossentropy", "ink": "mse"},
        loss_weights={"digit": 1.0, "ink": 0.5},
        metrics={"digit": ["accuracy"]},
    ).run(dataset.x, dataset.y)
    assert np.isfinite(result.test["loss"]) and result.best["point_id"] in set(result.members.point)
    assert "val_digit_accuracy" in result.members


def test_l2_sp_toward_one_shared_w0_trains_exactly_as_model_fit():
    """`L2SP(λ, w₀)` (fine-tuning's pull toward the pretrained weights) on the population's basis: one w₀ for every
    member, λ per member; both λ and both folds against `fit`, the penalty growing with λ."""
    w0 = np.random.default_rng(0).normal(scale=0.1, size=(64, 32)).astype("float32")

    def toward_w0(point):
        return keras.Sequential(
            [
                keras.Input((64,)),
                L.Dense(32, activation="relu", kernel_regularizer=R.L2SP(point["l2"], w0)),
                L.Dense(10, activation="softmax"),
            ]
        )

    by_lambda = assert_equivalent(toward_w0, X, training(), members_checked=(0, 1, 2, 3))
    assert (by_lambda[1e-2].train_penalty > 0).all() and (by_lambda[0.0].train_penalty == 0).all()
