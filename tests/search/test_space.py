"""Search spaces: grids, reproducible random search, coarse-to-fine refinement, stable point ids."""

import pytest

from reglab.search import space


def test_grid_is_every_combination_and_deduplicates_equal_points():
    points = space.grid_points({"l2": [0, 0.0, 1e-3], "dropout": [0.0, 0.5]})
    assert len(points) == 4
    assert {"l2": 0.001, "dropout": 0.5} in points


def test_random_points_are_reproducible_and_within_bounds():
    dists = {"l2": space.LogUniform(1e-5, 1e-1), "dropout": {"uniform": [0.0, 0.5]}, "penalty": ["l1", "l2"]}
    a = space.random_points(dists, 20, seed=3)
    assert a == space.random_points(dists, 20, seed=3) != space.random_points(dists, 20, seed=4)
    assert all(1e-5 <= p["l2"] <= 1e-1 and 0 <= p["dropout"] <= 0.5 and p["penalty"] in ("l1", "l2") for p in a)
    exponents = sorted(int(f"{p['l2']:e}".split("e")[1]) for p in a)
    assert exponents[0] <= -4 and exponents[-1] >= -2  # spread over decades, as log-uniform should


def test_refine_narrows_around_the_best_value():
    assert space.refine([0.0, 1e-3, 1e-1], [0.5, 0.2, 0.9], n=1) == [
        0.003162
    ]  # between 1e-4 (0 is no neighbour on a log axis) and 1e-1
    low = space.refine([0.0, 1e-3, 1e-1], [0.1, 0.2, 0.9], n=2)  # 0 is best: between 1e-5 and 1e-3
    assert all(1e-5 < v < 1e-3 for v in low)
    high = space.refine([1e-3, 1e-2], [0.9, float("nan")], n=3)  # NaN (failed) is never the best
    assert all(1e-4 < v < 1e-2 for v in high)  # a decade below the lowest value, up to its neighbour


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: space.grid_points({}), "non-empty dict"),
        (lambda: space.grid_points({"l2": []}), r"Received: grid\['l2'\]=\[\]"),
        (lambda: space.grid_points({"l2": [float("nan")]}), "Received: l2=nan"),
        (lambda: space.grid_points({"l2": [[1]]}), r"Received: l2=\[1\]"),
        (lambda: space.LogUniform(0, 1), "Received: low=0"),
        (lambda: space.LogUniform(1e-2, 1e-3), "Received: high=0.001"),
        (lambda: space.random_points({"l2": {"normal": [0, 1]}}, 3, 0), "Received: random"),
        (lambda: space.random_points({"l2": space.LogUniform(1e-5, 1)}, 0, 0), "Received: n_trials=0"),
        (lambda: space.refine([0.0], [0.1]), "without positive values"),
    ],
)
def test_bad_spaces_are_refused(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
