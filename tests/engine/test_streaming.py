"""Features larger than memory: `reglab.stream` keeps them on disk, a population reads each chunk once an
epoch for all its members, and every member still trains exactly as `model.fit` of the same batches."""

import keras
import numpy as np
import pandas as pd
import pytest

import reglab
from reglab import data as D
from reglab import on_disk, zoo
from reglab.engine import population, streaming
from reglab.engine.training import Training, compile_model
from reglab.search import plan

X, _, Y = zoo.digits()
FAMILIES = zoo.families()


def on_disk_copy(tmp_path, x, y, chunk_rows):
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return reglab.stream(tmp_path / "data.npz", chunk_rows=chunk_rows)


def training(epochs=3, standardize=False):
    return Training(
        epochs=epochs,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        loss="sparse_categorical_crossentropy",
        metrics=("accuracy",),
        standardize=standardize,
    )


def fit(build, member, x, y, setting, order, val_batch):
    """`model.fit` of the member's model (built under its seed) on the batches a streamed population takes:
    its rows in the chunked order, validation in blocks of `val_batch` rows."""
    keras.backend.clear_session(free_memory=False)
    plan.set_global_seed(member.seed)
    model = build(member.point)
    compile_model(model, setting, member.point)
    history = []
    for epoch in range(setting.epochs):
        rows = order(member, epoch)
        h = model.fit(
            x[rows],
            y[rows],
            batch_size=setting.batch_size,
            shuffle=False,
            epochs=epoch + 1,
            initial_epoch=epoch,
            verbose=0,
            validation_data=(x[member.val], y[member.val]),
            validation_batch_size=val_batch,
        )
        history.append({k: v[-1] for k, v in h.history.items()})
    return {v.path: np.asarray(v.value) for v in model.trainable_variables}, pd.DataFrame(history)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mlp-dropout", "conv1d-batchnorm"])
def test_a_streamed_population_trains_every_member_exactly_as_model_fit_of_its_batches(tmp_path, family, monkeypatch):
    build, x = FAMILIES[family]
    n = 300
    x, y = np.ascontiguousarray(D.rows(x, slice(0, n))), Y[:n]
    xs, ys = on_disk_copy(tmp_path, x, y, chunk_rows=64)  # 5 chunks
    monkeypatch.setattr(streaming, "VALIDATION_BYTES", 40 * int(np.prod(x.shape[1:])) * 4 * 2)  # blocks of 40 rows
    dataset = D.prepare(xs, ys)
    assert isinstance(dataset.x, on_disk.DiskArray)
    rest, _ = D.split_test(dataset, None, 0, True)
    members = plan.members([{"l2": v} for v in (0.0, 1e-2)], D.folds(dataset, rest, 2, 1, 0, True), 0)
    (pop,), failures = population.plan_populations(members, build, probe=x[:1])
    assert not failures
    reads = []
    original = on_disk.DiskArray._read
    monkeypatch.setattr(on_disk.DiskArray, "_read", lambda self, a, b: reads.append((a, b)) or original(self, a, b))
    setting = training()
    records, weights, _ = population.train_population(pop, dataset, setting)
    # each chunk read once an epoch for training and once for validation, for all four members (a
    # shard running beside another may read one again): never once per member
    assert len(reads) <= setting.epochs * 2 * 5 + 4, len(reads)
    order = streaming.ChunkedOrder(n, 64)
    for m in (0, -1):  # both λ, both folds
        member = members[m]
        expected, history = fit(build, member, x, y, setting, order, val_batch=40)
        assert max(np.abs(expected[p] - weights[member.id][p]).max() for p in expected) <= 1e-5
        ours = records[member.id]
        np.testing.assert_allclose(ours.train_total, history["loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.val_total, history["val_loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.val_accuracy, history["val_accuracy"], atol=1e-6)


def test_streamed_standardization_uses_each_folds_own_statistics_computed_chunk_by_chunk(tmp_path):
    x = (np.random.default_rng(0).normal(1e4, 3.0, size=(500, 6))).astype("float32")  # a large mean
    x[:, 2] = 7.0  # a constant feature: std 1, as in memory
    xs, _ = on_disk_copy(tmp_path, x, np.zeros(500), chunk_rows=37)
    train = np.sort(np.random.default_rng(1).choice(500, 350, replace=False))
    mean, std = streaming.statistics(xs, train)
    np.testing.assert_allclose(mean, x[train].astype("float64").mean(0), rtol=1e-7)
    np.testing.assert_allclose(std, np.where(x[train].std(0) > 0, x[train].astype("float64").std(0), 1), rtol=1e-4)
    assert std[2] == 1.0
    rows = streaming.HostRows(xs, [None, {"x_mean": mean, "x_std": std}])
    index = np.array([[3, 499], [500 + 3, 500 + 499]])  # view 0 as it is, view 1 standardized
    got = rows(index)
    np.testing.assert_array_equal(got[0], x[[3, 499]])
    np.testing.assert_array_equal(got[1], (x[[3, 499]] - mean) / std)


def test_a_sweep_on_a_parquet_file_streams_it_chooses_refits_tests_and_resumes(tmp_path):
    x, y = X[:400], Y[:400]
    frame = pd.DataFrame(x, columns=[f"p{i}" for i in range(64)]).assign(digit=y)
    frame.to_parquet(tmp_path / "digits.parquet", row_group_size=100)
    xs, ys = reglab.stream(tmp_path / "digits.parquet", target="digit", chunk_rows=128)
    assert isinstance(xs, on_disk.DiskArray) and xs.shape == (400, 64)
    np.testing.assert_array_equal(xs[:], x)
    assert reglab.stream(tmp_path / "digits.parquet", target="digit")[0].path == xs.path  # converted once
    result = reglab.Sweep(zoo.mlp_dropout, grid={"l2": [0.0, 1e-2]}, cv=2, test_size=0.25, epochs=4, seed=0).run(
        xs, ys, run_dir=tmp_path / "run"
    )
    assert result.timing["populations"] == 1 and result.timing["compile_seconds"] > 0  # the population engine
    assert "feature:p63" in result.epochs.columns  # the first layer's inputs named by the file's columns
    assert len(result.summary) == 2 and result.best is not None
    assert result.test["accuracy"] > 0.3  # ten classes: chance is 0.1
    again = reglab.Sweep(zoo.mlp_dropout, grid={"l2": [0.0, 1e-2]}, cv=2, test_size=0.25, epochs=4, seed=0).run(
        xs, ys, run_dir=tmp_path / "run"
    )  # resumed: nothing trained again
    pd.testing.assert_frame_equal(again.epochs, result.epochs)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: np.savez(p, x=np.full((5, 2), np.nan), y=np.arange(5)), r"Features must be finite.*Received: x"),
        (lambda p: np.savez(p, x=np.ones((5, 2)), z=np.arange(5)), r"needs arrays 'x' and 'y'"),
        (lambda p: np.savez(p, x=np.ones(5), y=np.arange(5)), r"rank >= 2"),
        (lambda p: np.savez(p, x=np.ones((5, 2)), y=np.arange(4)), r"len\(x\)=5, len\(y\)=4"),
        (lambda p: p.write_bytes(b"not a zip"), r"not an NPZ archive of plain arrays.*never loads pickles"),
    ],
    ids=["nan", "no-target", "rank-1", "lengths", "damaged"],
)
def test_streaming_refuses_bad_files_before_any_work(tmp_path, make, match):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(ValueError, match=match):
        xs, ys = reglab.stream(path)
        D.prepare(xs, ys)


def test_a_compressed_archive_is_written_out_once_and_a_parquet_column_that_is_text_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path / "cache"))
    x = np.arange(40, dtype="float64").reshape(20, 2)
    np.savez_compressed(tmp_path / "c.npz", x=x, y=np.arange(20) % 2)
    xs, ys = reglab.stream(tmp_path / "c.npz")
    assert xs.path.parent == tmp_path / "cache" / "data" and xs.file_dtype == np.float32
    np.testing.assert_array_equal(xs[[19, 0]], x[[19, 0]].astype("float32"))
    pd.DataFrame({"a": ["x", "y"], "t": [0, 1]}).to_parquet(tmp_path / "text.parquet")
    with pytest.raises(ValueError, match=r"encode these first: \['a'\]"):
        reglab.stream(tmp_path / "text.parquet", target="t")
    with pytest.raises(ValueError, match=r"chunk_rows=0"):
        reglab.stream(tmp_path / "c.npz", chunk_rows=0)


@pytest.mark.slow
def test_a_worker_process_streams_the_same_file_and_trains_the_same_members(tmp_path):
    """The process executor hands a worker the file's place, not its rows: the tables equal this process's."""
    xs, ys = on_disk_copy(tmp_path, X[:300], Y[:300], chunk_rows=100)

    def sweep(executor):
        return reglab.Sweep(
            zoo.mlp_dropout, grid={"l2": [0.0, 1e-2]}, cv=2, epochs=2, refit=False, executor=executor, seed=0
        ).run(xs, ys)

    there, here = sweep("process"), sweep("local")
    assert there.timing["executor"]["name"] == "process"
    pd.testing.assert_frame_equal(there.epochs.drop(columns="seconds"), here.epochs.drop(columns="seconds"))
