"""Recurrent layers: `regularize(recurrent=...)`, their penalties in the ledger, and `recurrent_<penalty>` keys.

Data: scikit-learn's digits, each 8×8 image read as a sequence of 8 rows of 8 pixels.
"""

import keras
import numpy as np
import pytest
from conftest import weights_equal

import reglab
from reglab.kit.attach import hidden_layers
from reglab.kit.regularizers import L1, L2
from reglab.search import points

pytestmark = pytest.mark.both_backends  # the Keras-level kit works on either backend

RECURRENT = {
    "lstm": lambda: keras.layers.LSTM(8, name="rnn"),
    "gru": lambda: keras.layers.GRU(8, name="rnn"),
    "simple_rnn": lambda: keras.layers.SimpleRNN(8, name="rnn"),
    "bidirectional_lstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(8), name="rnn"),
}


@pytest.fixture(scope="module")
def sequences():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32").reshape(-1, 8, 8), y.astype("int64")


def rnn_model(kind="lstm"):
    return keras.Sequential(
        [keras.Input((8, 8)), RECURRENT[kind](), keras.layers.Dense(10, activation="softmax", name="out")], name="net"
    )


def perturbed(model):
    """`model` with weights no initializer would give: stands for a pretrained model."""
    rng = np.random.default_rng(0)
    model.set_weights([w + rng.normal(0.0, 0.3, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("kind", list(RECURRENT))
def test_recurrent_penalty_goes_on_the_recurrent_kernels_only(kind):
    base = perturbed(rnn_model(kind))
    lam = 0.01
    model = reglab.regularize(base, recurrent=L2(lam))
    assert weights_equal(model.get_weights(), base.get_weights())
    penalized = [v for v in model.trainable_weights if v.regularizer is not None]
    directions = ("forward_lstm", "backward_lstm") if kind.startswith("bidirectional") else ("",)
    assert len(penalized) == len(directions)  # input kernels, biases and the output layer untouched
    assert all(v.path.endswith("_cell/recurrent_kernel") and d in v.path for v, d in zip(penalized, directions))
    expected = sum(
        lam * np.square(w.numpy().astype(np.float64)).sum()
        for w in base.trainable_weights
        if w.path.endswith("recurrent_kernel")
    )
    assert float(keras.ops.sum(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_bidirectional_directions_share_the_one_regularizer_object():
    reg = L1(1e-3)
    model = reglab.regularize(rnn_model("bidirectional_lstm"), kernel=L2(1e-4), recurrent=reg)
    by_path = {v.path.split("/")[2] + "/" + v.path.rsplit("/", 1)[1]: v.regularizer for v in model.trainable_weights}
    assert by_path["forward_lstm/recurrent_kernel"] is reg and by_path["backward_lstm/recurrent_kernel"] is reg
    assert isinstance(by_path["forward_lstm/kernel"], L2) and by_path["forward_lstm/bias"] is None


def test_recurrent_layers_are_hidden_layers_and_their_kernel_is_the_input_kernel():
    model = keras.Sequential(
        [
            keras.Input((8, 8)),
            keras.layers.LSTM(8, return_sequences=True, name="first"),
            keras.layers.Bidirectional(keras.layers.GRU(4), name="second"),
            keras.layers.Dense(10, name="out"),
        ],
        name="net",
    )
    assert [layer.name for layer in hidden_layers(model)] == ["first", "second"]
    out = points.apply(model, {"l2": 1e-3, "recurrent_l1": 1e-4, "dropout": 0.1})
    penalties = {v.path: type(v.regularizer).__name__ for v in out.trainable_weights if v.regularizer is not None}
    assert penalties == {
        "net/first/lstm_cell/kernel": "L2",
        "net/first/lstm_cell/recurrent_kernel": "L1",
        "net/second/forward_gru/gru_cell/kernel": "L2",
        "net/second/forward_gru/gru_cell/recurrent_kernel": "L1",
        "net/second/backward_gru/gru_cell/kernel": "L2",
        "net/second/backward_gru/gru_cell/recurrent_kernel": "L1",
    }
    assert [layer.name for layer in out.layers] == ["first", "first_dropout", "second", "second_dropout", "out"]
    assert points.describe({"recurrent_l2": 0.01}) == "L2(l2=0.01) on the hidden layers' recurrent kernels"


@pytest.mark.slow
def test_ledger_reports_the_recurrent_kernel_apart_from_the_input_kernel(sequences):
    x, y = sequences
    model = reglab.regularize(rnn_model("bidirectional_lstm"), kernel=L2(1e-3), recurrent=L2(3e-2), layers="rnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    ledger = reglab.LossLedger()
    model.fit(x[:512], y[:512], epochs=2, batch_size=64, verbose=0, callbacks=[ledger])
    table = ledger.history
    columns = sorted(c for c in table.columns if c.startswith("penalty:"))
    assert columns == [
        f"penalty:net/rnn/{d}_lstm/lstm_cell/{w}"
        for d in ("backward", "forward")
        for w in ("kernel", "recurrent_kernel")
    ]
    assert ledger.terms["net/rnn/forward_lstm/lstm_cell/recurrent_kernel"] == "L2(l2=0.03)"
    assert ledger.terms["net/rnn/forward_lstm/lstm_cell/kernel"] == "L2(l2=0.001)"
    assert (table[columns] > 0).all().all()
    np.testing.assert_allclose(table[columns].sum(axis=1), table.train_penalty, rtol=1e-5)


@pytest.mark.slow
def test_sweep_over_the_recurrent_key_reaches_the_recurrent_kernel(sequences):
    x, y = sequences
    sweep = reglab.Sweep(
        rnn_model("lstm"),
        grid={"recurrent_l2": [0.0, 1e-2]},
        cv=0.25,
        epochs=2,
        batch_size=32,
        learning_rate=1e-2,
        engine="reference",
        refit=False,
        seed=0,
    )
    result = sweep.run(x[:600], y[:600])
    column = "penalty:net/rnn/lstm_cell/recurrent_kernel"
    assert [c for c in result.epochs.columns if c.startswith("penalty:")] == [column]
    by_point = result.epochs.groupby("recurrent_l2")[column].max()
    assert by_point.loc[0.0] == 0.0 and by_point.loc[1e-2] > 0
    assert (result.members.status == "ok").all()


def test_recurrent_arguments_without_a_recurrent_layer_are_refused():
    dense = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, name="h"), keras.layers.Dense(10, name="out")])
    with pytest.raises(
        ValueError, match=r"None of the selected layers has a trainable recurrent kernel.*Received: layers=None"
    ):
        reglab.regularize(dense, recurrent=L2(1e-3))
    with pytest.raises(ValueError, match=r"has no trainable recurrent kernel.*Received: recurrent="):
        reglab.regularize(rnn_model(), recurrent={"out": L2(1e-3)})
    with pytest.raises(ValueError, match=r"No layer with a recurrent kernel.*Received: recurrent_l2=0.0"):
        reglab.Sweep(dense, grid={"recurrent_l2": [0.0, 1e-2]}, cv=2, epochs=1)
    with pytest.raises(ValueError, match=r"Unknown search key.*Received: recurrent_foo=1.0"):
        reglab.Sweep(rnn_model(), grid={"recurrent_foo": [1.0]}, cv=2, epochs=1)
