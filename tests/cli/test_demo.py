"""`reglab demo` tells the tutorial's story: no L2 overfits, moderate L2 is selected, strong L2 underfits."""

import inspect

import pytest

from reglab.cli import commands as cli
from reglab.cli import demo
from reglab.decide.diagnosis import curves


@pytest.mark.slow
def test_the_default_demo_shows_overfitting_a_moderate_best_and_underfitting():
    result = demo.run_demo(seed=0)
    point = dict(zip(result.summary["l2"], result.summary["point"]))
    curve = {strength: curves(result.epochs)[pid] for strength, pid in point.items()}
    verdict = dict(zip(result.diagnosis["point"], result.diagnosis["verdict"]))
    final_val = {s: float(c["val_loss"].iloc[-1]) for s, c in curve.items()}
    final_train = {s: float(c["train_loss"].iloc[-1]) for s, c in curve.items()}

    assert set(point) == set(demo.LAMBDAS) and demo.NONE < demo.MODERATE < demo.STRONG == max(demo.LAMBDAS)
    assert result.best["params"]["l2"] == demo.MODERATE
    none = curve[demo.NONE]["val_loss"]
    assert none.iloc[-1] > none.min() and none.idxmin() < none.index[-1]  # λ=0's validation loss turned up
    assert final_val[demo.NONE] > final_val[demo.MODERATE]
    assert verdict[point[demo.NONE]] == "overfitting"
    assert max(final_train, key=final_train.get) == demo.STRONG
    assert verdict[point[demo.STRONG]] == "underfitting"

    lines = demo.story(result)
    assert len(lines) == len(demo.LAMBDAS)
    for line, strength in zip(lines, sorted(demo.LAMBDAS)):
        assert line.startswith(f"λ={strength:g} ") and f" {verdict[point[strength]]}: " in f" {line}"
    assert [s for line, s in zip(lines, sorted(demo.LAMBDAS)) if "selected, " in line] == [demo.MODERATE]
    assert f"{final_val[demo.NONE]:.3f} at the end" in lines[0]  # the numbers are the curves'


def test_the_cli_default_is_the_demo_budget():
    assert inspect.signature(cli.demo).parameters["epochs"].default.default == demo.EPOCHS
