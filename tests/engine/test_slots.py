"""Slots: a population's slot handed to another member at an epoch boundary, without recompiling; every
member — the one that left early and the one that took its slot — trains exactly as `model.fit` of its own model."""

import numpy as np
import pytest
from test_population import FAMILIES, X, fit, mlp_dropout, setup, training

from reglab import data as D
from reglab.engine import population
from reglab.engine.knobs import Knob, PerMember
from reglab.engine.slots import Slots
from reglab.search import plan


def _max_gap(expected, got):
    assert expected.keys() == got.keys()
    return max(np.abs(expected[p] - got[p]).max() for p in expected)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["mlp-dropout", "conv1d-batchnorm"])  # dropout's seeds; BatchNorm's statistics
def test_a_slot_handed_on_trains_the_member_that_left_and_the_one_that_came_exactly_as_fit(family):
    build, x = FAMILIES[family]
    dataset, members = setup(x, lambdas=(0.0, 1e-2))  # point-major: λ=0 on folds 0, 1, then λ=1e-2 on both
    assert [m.point["l2"] for m in members] == [0.0, 0.0, 1e-2, 1e-2]
    (pop,), failures = population.plan_populations(members, build, probe=D.rows(dataset.x, slice(0, 1)))
    assert not failures
    asked = []

    def decide(epoch, board):
        asked.append((epoch, list(board.occupant)))
        return {0: 2, 1: 3} if epoch == 1 else {}  # after one epoch the λ=1e-2 members take the slots, fold by fold

    setting = training(epochs=3)
    records, weights, timing = population.train_population(pop, dataset, setting, slots=Slots(2, decide))
    assert asked[:2] == [(1, [0, 1]), (2, [2, 3])] and asked[-1] == (4, [None, None])
    assert timing.get("traced_epochs", 0) + timing.get("read_epochs", 0) == 1  # one program for all four members
    for m, epochs in ((0, 1), (1, 1), (2, 3), (3, 3)):
        member = members[m]
        assert list(records[member.id].epoch) == list(range(1, epochs + 1)), member.id
        expected, history = fit(build, member, dataset, training(epochs=epochs))
        assert _max_gap(expected, weights[member.id]) <= 1e-5, member.id
        np.testing.assert_allclose(records[member.id].val_total, history["val_loss"], rtol=1e-5, atol=1e-6)
        model_weights = {v.path: np.asarray(v.value) for v in pop.models[m].trainable_variables}
        assert _max_gap(expected, model_weights) <= 1e-5  # the member's own model holds its final state


@pytest.mark.slow
def test_members_planned_during_training_take_freed_slots_and_train_exactly_as_fit():
    """A sampler's next trials did not exist when the population was traced: `decide` seats new members, built
    then, whose rows are appended to the program's (no new compilation) — each trains exactly as `model.fit` of
    its own model; one the traced program cannot serve (a dropout rate it holds constant) is refused, and says why."""
    dataset, members = setup(X, lambdas=(0.0, 1e-3))
    splits = [(m.fold, m.repeat, m.train, m.val) for m in members[:2]]
    late = plan.members([{"l2": 1e-2}], splits, 0)  # fold 0, fold 1
    other_rate = plan.members([{"l2": 1e-3, "dropout": 0.5}], splits, 0)[0]
    (pop,), _ = population.plan_populations(members, mlp_dropout, probe=D.rows(dataset.x, slice(0, 1)))
    boards = []

    def decide(epoch, board):
        boards.append(board)
        if epoch == 1:  # the λ = 0 members stop; the new point takes their slots, fold by fold
            return {0: late[0], 1: late[1]}
        return {0: other_rate} if epoch == 4 else {}

    records, weights, timing = population.train_population(pop, dataset, training(epochs=3), slots=Slots(2, decide))
    assert timing.get("traced_epochs", 0) + timing.get("read_epochs", 0) == 1
    assert set(records) == {members[0].id, members[1].id, late[0].id, late[1].id}  # λ = 1e-3 never took a slot
    assert list(boards[-1].refused) == [other_rate.id] and "per-member number" in boards[-1].refused[other_rate.id]
    for member, epochs in ((members[0], 1), (late[0], 3), (late[1], 3)):
        expected, history = fit(mlp_dropout, member, dataset, training(epochs=epochs))
        assert len(records[member.id]) == epochs and _max_gap(expected, weights[member.id]) <= 1e-5, member.id
        np.testing.assert_allclose(records[member.id].val_total, history["val_loss"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(records[member.id].train_total, history["loss"], rtol=1e-5, atol=1e-6)
    assert records[late[0].id].train_penalty.iloc[0] > records[members[0].id].train_penalty.iloc[0]


def test_a_member_takes_a_slot_only_on_its_fold_and_only_once():
    dataset, members = setup(X, n=120, lambdas=(0.0, 1e-2))
    (pop,), _ = population.plan_populations(members, mlp_dropout, probe=D.rows(dataset.x, slice(0, 1)))
    with pytest.raises(ValueError, match=r"only on the slot's fold .*Received: member="):
        population.train_population(pop, dataset, training(epochs=2), slots=Slots(2, lambda e, b: {0: 3}))
    (pop,), _ = population.plan_populations(members, mlp_dropout, probe=D.rows(dataset.x, slice(0, 1)))
    with pytest.raises(ValueError, match=r"takes one slot, once"):
        population.train_population(pop, dataset, training(epochs=2), slots=Slots(2, lambda e, b: {0: 0}))


@pytest.mark.slow
def test_members_left_training_move_into_the_first_shard_and_still_train_exactly_as_fit():
    """Slots run in more, smaller shards; a shard with no member training does not run, so members in later
    shards move into empty slots of earlier ones (the same rows) — their state, epoch and batches with them."""
    dataset, members = setup(X, lambdas=(0.0, 1e-3, 1e-2, 3e-2))  # 4 points × 2 folds: two shards of four slots
    (pop,), _ = population.plan_populations(members, mlp_dropout, probe=D.rows(dataset.x, slice(0, 1)))
    seen = {}

    def decide(epoch, board):
        seen[epoch] = list(board.occupant)
        return {s: None for s in range(4)} if epoch == 1 else {}  # the first shard's members stop after one epoch

    records, weights, _ = population.train_population(pop, dataset, training(epochs=3), slots=Slots(8, decide))
    assert seen[1] == list(range(8)) and seen[2] == [4, 5, 6, 7, None, None, None, None]  # moved, fold by fold
    for m, epochs in ((0, 1), (3, 1), (4, 3), (7, 3)):
        expected, _ = fit(mlp_dropout, members[m], dataset, training(epochs=epochs))
        assert len(records[members[m].id]) == epochs and _max_gap(expected, weights[members[m].id]) <= 1e-5


def test_a_late_member_joins_only_if_every_answer_the_trace_was_given_stays_the_same():
    """A stand-in per-member number answers the questions the traced code asks (`rate > 0`, `rate == 1.0`) for
    the members it was traced with; a member admitted later must get the same answers, or its computation
    might not be in the program."""
    knob = Knob(None, "rate", np.array([0.0, 0.3], "float32"))
    rate = PerMember(None, knob.values.tolist(), knob.asked)
    assert bool(rate) and not rate == 1.0 and rate < 0.1  # what Keras's Dropout asks, and one more
    assert knob.asked == [("bool", None), ("eq", 1.0), ("lt", 0.1)]
    assert knob.keeps_answers([0.0, 0.3, 0.2])  # some rate > 0, not all 1, some < 0.1: as traced
    assert not knob.keeps_answers([0.3, 0.2])  # none < 0.1 any more
    assert not knob.keeps_answers([0.0, 0.0])  # a dropout the program computes for nobody
