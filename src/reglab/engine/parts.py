"""A population trained in parts: one population per value where its layers need a per-member value as a
Python number (`Untraceable`), or in halves where it does not fit in the device's memory."""

from __future__ import annotations

from reglab.engine.grouping import Population


class Untraceable(Exception):
    """The step did not trace with per-member values standing in for numbers (`PerMember`)."""

    def __init__(self, groups):
        super().__init__("per-member values did not trace")
        self.groups = groups


def in_parts(population: Population, train, told: list | None = None):
    """`train(population)`; where its layers need a per-member value as a Python number, one population per
    value; where it does not fit in the device's memory (XLA's RESOURCE_EXHAUSTED), in two halves — each
    split again if it must —, said once. Each member trains as it would have in one population (test)."""
    import warnings

    try:
        return train(population)
    except Untraceable as split:
        groups = split.groups
    except Exception as error:
        M = len(population.members)
        if "RESOURCE_EXHAUSTED" not in str(error) or M < 2:
            raise
        groups = [range(M // 2), range(M // 2, M)]
        told = [] if told is None else told
        if not told:
            told.append(True)
            reason = str(error).strip().splitlines()[0][:200]
            warnings.warn(
                f"reglab: a population of {M} members did not fit in the device's memory ({reason}); "
                "training it in parts (halves, and halves of those where they must)",
                UserWarning,
                stacklevel=2,
            )
    out, weights = {}, {}
    timing = {"epoch_seconds": [], "compile_seconds": 0.0, "seconds": 0.0, "members": 0, "convolutions": {}}
    for who in groups:
        part = Population([population.members[i] for i in who], [population.models[i] for i in who], population.build)
        records, final, seconds = in_parts(part, train, told)
        out.update(records)
        weights.update(final)
        for key in ("compile_seconds", "seconds", "members", "traced_epochs", "read_epochs"):
            timing[key] = timing.get(key, 0) + seconds.get(key, 0)
        timing["epoch_seconds"] += seconds["epoch_seconds"]
        timing["convolutions"].update(seconds["convolutions"])
    return out, weights, timing
