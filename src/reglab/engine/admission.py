"""Members admitted to a population after its epoch was traced — a sampler's next trials taking freed slots
(`reglab.engine.slots.hand_on`): their rows appended to the program's initial state and per-member values, so
that the compiled program (its shapes are per slot, not per member) trains them without a new compilation."""

from __future__ import annotations

import numpy as np

from reglab.engine.grouping import signature
from reglab.engine.knobs import learning_rate_variable, penalty_terms, per_member_knobs
from reglab.engine.program import decays, model_rows, penalized


def extend(program, members, models) -> str | None:
    """Admit members built after the program was traced (a sampler's next trials taking freed slots): their
    rows are appended to the initial state and the per-member values, and the compiled program serves them
    — its shapes are per slot, not per member. Returns None, or why they cannot join (nothing changed then):
    another architecture, a penalty the traced program does not compute, or a per-member number that is
    constant in it or would change an answer it was given (`Knob.keeps_answers`)."""
    from reglab.engine.training import make_optimizer

    for member, model in zip(members, models):
        if signature(model, member.point) != program.signature:
            return f"member {member.id!r} has another architecture or optimizer settings"
    grown = [*program.population.models, *models]
    with program.penalties_on():  # the template (member 0's model) computes none itself while its program lives
        terms = penalty_terms(grown)
    if [(t.name, t.index, t.keys, t.shared is not None) for t in terms] != [
        (t.name, t.index, t.keys, t.shared is not None) for t in program.terms
    ]:
        return "their penalties are not the ones the program computes (another regularizer, or a λ on a weight all others leave at 0)"
    optimizers = [make_optimizer(program.training, m.point, model) for m, model in zip(members, models)]
    knobs = per_member_knobs(program.template, grown, [*program.optimizers, *optimizers])
    # a knob stands for the same attribute, and the questions the trace asked get the same answers
    if [(k.owner, k.attribute) for k in knobs] != [(k.owner, k.attribute) for k in program.knobs] or not all(
        old.keeps_answers(new.values) for old, new in zip(program.knobs, knobs)
    ):
        return "a per-member number (a rate, a decay, a proximal strength) the program holds constant or branched on"
    regularized = penalized(models)
    if program.measured and not set().union(*regularized) <= set(program.measured):
        return "a penalized weight whose gradients the program does not measure"
    decay = decays(members)
    if any(decay) and not program.decay_targets:
        return "a weight decay the program does not apply"
    for part, rows in model_rows(models).items():
        program.initial[part][:] = [np.concatenate([stacked, new]) for stacked, new in zip(program.initial[part], rows)]
    rate = learning_rate_variable(program.template.optimizer)
    for i, (variable, stacked) in enumerate(zip(program.template.optimizer.variables, program.initial["optimizer"])):
        rows = np.repeat(stacked[:1], len(members), axis=0)  # every member's optimizer starts the same
        if variable is rate:
            rows = np.array([np.asarray(learning_rate_variable(o).value) for o in optimizers])
        program.initial["optimizer"][i] = np.concatenate([stacked, rows])
    program.initial["alive"] = np.concatenate([program.initial["alive"], np.ones(len(members), bool)])
    for old, new in zip(program.terms, terms):
        old.coefficients, old.schedules = new.coefficients, new.schedules
    for old, new in zip(program.knobs, knobs):
        old.values = new.values
    program.optimizers += optimizers
    program.penalized += regularized
    program.decay += decay
    program.population.members.extend(members)
    program.population.models.extend(models)
    program.M += len(members)
    return None
