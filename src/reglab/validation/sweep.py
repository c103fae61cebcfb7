"""A sweep's settings, validated without Keras: `Sweep` validates its arguments with `arguments`, and
`reglab sweep` validates a config file with it before it spends ~5 s importing Keras and JAX.

What needs Keras (a loss or metric by name, whether an engine runs on this backend, the model) is
validated by `model` and `with_keras`, which import it only when called (a `Sweep` calls them).
"""

from __future__ import annotations

import sys

from reglab import validation
from reglab.search import points, space

ENGINES = ("auto", "population", "reference")
EXECUTORS = (
    "auto",
    "local",
    "process",
    "ray",
)  # reglab.engine.executors (not imported here: no Keras before the checks)
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax", "nadam", "ftrl", "lion")


def arguments(
    *,
    seed=0,
    grid=None,
    random=None,
    stages=None,
    search=None,
    n_trials=10,
    refine=0,
    refine_param=None,
    refine_points=5,
    cv=5,
    repeats=1,
    stratify="auto",
    test_size=None,
    epochs=20,
    batch_size=32,
    learning_rate=1e-3,
    optimizer="adam",
    select="val_loss",
    engine="auto",
    executor="auto",
    workers=1,
    prune=None,
    eta=3,
    min_epochs=1,
    gradients=False,
) -> dict:
    """The settings, each checked ("… Received: name=value"), as `Sweep` keeps them: `seed`, `n_trials`,
    `refine`, `refine_points`, `refine_param` (the refined key), `repeats`, `epochs`, `batch_size`,
    `optimizer` (lower case), `gradient_rows` (0: off) and `rounds`, the search's points round by round.

    >>> arguments(grid={"l2": [0.0, 1e-3]}, optimizer="Adam")["rounds"]
    [[{'l2': 0.0}, {'l2': 0.001}]]
    >>> arguments(grid={"l2": [0.0]}, epochs=0)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for argument `epochs`: expected a number >= 1. Received: epochs=0
    """
    out = {"seed": validation.number(seed, "seed", low=0, high=2**32 - 1, integer=True)}
    named = (("grid", grid), ("random", random), ("stages", stages), ("search", search))
    given = [name for name, value in named if value is not None]
    if len(given) != 1:
        raise ValueError(
            f"Give exactly one of `grid`, `random`, `stages`, `search`. Received: {given or 'none of them'}"
        )
    out["n_trials"] = validation.number(n_trials, "n_trials", low=1, integer=True)
    from reglab.search.studies import Optuna

    out["search"] = Optuna.of(search)
    if out["search"] is not None:  # its points come as it asks: its keys are checked on a point of its space
        rounds = [[out["search"].example_point()]]
    elif stages is not None:
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ValueError(f"`stages` is a non-empty list of grids. Received: stages={stages!r}")
        rounds = [space.grid_points(stage) for stage in stages]
    elif grid is not None:
        from reglab.search import auto

        rounds = [space.grid_points(auto.split(grid, builder=True)[0])]  # "auto" entries: a placeholder λ
    else:
        rounds = [space.random_points(random, out["n_trials"], out["seed"])]
    out["rounds"] = rounds
    out["refine"] = validation.number(refine, "refine", low=0, integer=True)
    if out["refine"] and out["search"] is not None:
        raise ValueError(f"`refine` refines a grid or random points, not a study's trials. Received: refine={refine}")
    from reglab.search.halving import Halving

    out["pruner"] = prune == "optuna"  # the study's own pruner, inside each round's population
    if out["pruner"] and out["search"] is None:
        raise ValueError(
            f"prune='optuna' is a study's pruner: give search=reglab.search.Optuna(...). Received: prune={prune!r}"
        )
    epochs_checked = validation.number(epochs, "epochs", low=1, integer=True)
    out["halving"] = None if out["pruner"] else Halving.of(prune, eta, min_epochs, epochs_checked)
    if (out["halving"] is not None or out["pruner"]) and (engine == "reference" or executor in ("process", "ray")):
        raise ValueError(
            "Successive halving hands a population's slots on between epochs: it needs the population engine in "
            f"this process (engine='auto' or 'population', executor='auto' or 'local'). Received: prune={prune!r}, "
            f"engine={engine!r}, executor={executor!r}"
        )
    out["refine_points"] = validation.number(refine_points, "refine_points", low=1, integer=True)
    out["refine_param"] = refine_param
    if out["refine"]:
        numeric = [k for k, v in rounds[0][0].items() if isinstance(v, float)]
        if refine_param is None and not numeric:
            raise ValueError(f"Nothing numeric to refine. Received: refine={refine}")
        key = out["refine_param"] = refine_param or numeric[0]
        if key not in rounds[0][0]:
            raise ValueError(f"`refine_param` must be a searched key. Received: refine_param={refine_param!r}")
        values = [p[key] for r in rounds for p in r if key in p]
        if not any(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
            raise ValueError(
                f"`refine` looks for new values on a log scale between positive ones; "
                f"{key!r} has none. Received: {key}={values!r}"
            )
    if isinstance(cv, float) and not isinstance(cv, bool):
        validation.number(cv, "cv", low=0, high=0.95, low_open=True)
    else:
        validation.number(cv, "cv", low=2, integer=True)
    out["repeats"] = validation.number(repeats, "repeats", low=1, integer=True)
    if stratify not in ("auto", True, False):
        raise ValueError(f"`stratify` is 'auto', True or False. Received: stratify={stratify!r}")
    if test_size is not None:
        validation.number(test_size, "test_size", low=0, high=0.9, low_open=True)
    out["epochs"] = validation.number(epochs, "epochs", low=1, integer=True)
    out["gradient_rows"] = gradient_rows(gradients)
    out["batch_size"] = validation.number(batch_size, "batch_size", low=1, integer=True)
    if not _is_schedule(learning_rate):
        validation.number(learning_rate, "learning_rate", low=0, low_open=True)
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer (use one of {list(OPTIMIZERS)}). Received: optimizer={optimizer!r}")
    out["optimizer"] = optimizer.lower()
    if not isinstance(select, str) or not select.startswith("val_"):
        raise ValueError(f"`select` names a validation quantity such as 'val_loss'. Received: select={select!r}")
    objectives = out["search"].objectives if out["search"] is not None else None
    if objectives and objectives[0] != select:
        raise ValueError(
            f"A study's objectives start with the sweep's `select` (what reglab chooses by): {select!r} first. "
            f"Received: objectives={objectives!r}"
        )
    if objectives and out["pruner"]:
        raise ValueError(
            "Optuna's pruners take one objective (a multi-objective trial has no intermediate values): "
            f"prune='halving' judges by `select`. Received: prune='optuna' with objectives={objectives!r}"
        )
    if engine == "stacked":  # a name that worked before the population engine replaced it
        raise ValueError(
            "The stacked engine is gone: the population engine (Keras's JAX backend) trains every "
            "model it trained, faster; use engine='auto'. Received: engine='stacked'"
        )
    if engine not in ENGINES:  # whether it runs on this backend is the Sweep's to say (Keras decides)
        raise ValueError(f"`engine` is one of {list(ENGINES)}. Received: engine={engine!r}")
    if executor not in EXECUTORS:
        raise ValueError(
            f"`executor` is one of {list(EXECUTORS)} (where populations train). Received: executor={executor!r}"
        )
    out["workers"] = validation.number(workers, "workers", low=1, integer=True)
    if executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ValueError("executor='ray' needs Ray: pip install 'reglab[ray]'. Received: executor='ray'")
    _check_search_keys(rounds, out["optimizer"])
    return out


def _is_schedule(value) -> bool:
    """A Keras learning-rate schedule (none can exist before Keras is imported: no import here)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(value, keras.optimizers.schedules.LearningRateSchedule)


def _check_search_keys(rounds: list[list[dict]], optimizer: str) -> None:
    """Keys any model takes: no record column's name, and optimizer keys the optimizer can apply."""
    from reglab.decide.selection import IDENTITY
    from reglab.kit.records import BASELINE, FIXED

    reserved = set(FIXED) | set(IDENTITY) | {"seconds", "status", "error", *BASELINE}
    for point in rounds[0]:
        for key in point:
            if key in reserved or ":" in key:
                raise ValueError(f"A search key may not be a record column or contain ':'. Received: {key}=...")
    for round_points in rounds:
        points.validate_optimizer_keys(round_points, optimizer)


# --- what needs Keras ------------------------------------------------------------------------------


def model(model) -> None:
    """A sweep's `model`: a builder (any callable) or a built Keras model."""
    import keras

    if isinstance(model, keras.Model):
        if not model.built or not model.inputs:
            raise ValueError(f"The model is not built: give it an Input first. Received: model={model.name!r}")
    elif not callable(model):
        raise ValueError(f"Expected a builder function or a Keras model. Received: model={model!r}")


def with_keras(model, rounds, loss, metrics, loss_weights, layers, layer_groups, engine, executor="auto") -> None:
    """What only Keras can say: the loss by name, the metrics' form, the loss weights, whether the engine
    runs on this process's backend, and — for a built model — where the points' keys would go."""
    import keras

    if loss != "auto":
        for part in _per_output(loss):
            try:
                keras.losses.get(part)
            except (ValueError, TypeError):
                raise ValueError(f"Unknown loss. Received: loss={loss!r}") from None
    if metrics != "auto" and not all(
        isinstance(m, (list, tuple)) and all(isinstance(n, str) for n in m)
        for m in (metrics.values() if isinstance(metrics, dict) else [metrics])
    ):
        raise ValueError(
            f"`metrics` is 'auto', a list of metric names or a dict of them per output. Received: metrics={metrics!r}"
        )
    if loss_weights is not None:
        for weight in _per_output(loss_weights, allow_number=False):
            validation.non_negative_float(weight, "loss_weights")
    if engine == "population" and executor == "local":
        from reglab.engine.population import unavailable

        if unavailable():
            raise ValueError(
                f"{unavailable()}; or train in JAX worker processes (executor='process'). Received: executor='local'"
            )
    from reglab.models import MLP

    if isinstance(model, MLP):  # reglab's own builder applies the points as a built model does: the same keys
        for round_points in rounds:
            points.validate(round_points, model.layer_groups)
    if isinstance(model, keras.Model):
        groups = dict(layer_groups or {})
        for round_points in rounds:
            points.validate(round_points, groups)
        from reglab.kit.attach import hidden_layers, select_layers

        if layers == "hidden":
            if not hidden_layers(model) and any(k != "penalty" for p in rounds[0] for k in p):
                raise ValueError("The model has no hidden layer with a kernel to regularize. Received: layers='hidden'")
        else:
            select_layers(model, layers)
        for selector in groups.values():
            select_layers(model, selector)
        for round_points in rounds:
            points.validate_model(model, round_points, layers, groups)


def _per_output(value, allow_number=True) -> list:
    """The parts of a setting given once or per output (a dict by output name, or a list)."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    if allow_number:
        return [value]
    raise ValueError(f"`loss_weights` is a dict by output name or a list. Received: loss_weights={value!r}")


def gradient_rows(gradients) -> int:
    """`Sweep(gradients=…)` as the rows of each member's fixed batch: True is `reglab.kit.gradients.ROWS`, False 0
    (off), a positive integer that many rows (fewer where a training fold has fewer).

    >>> gradient_rows(True), gradient_rows(False), gradient_rows(64)
    (256, 0, 64)
    """
    from reglab.kit.gradients import ROWS

    if gradients is True or gradients is False:
        return ROWS if gradients else 0
    if isinstance(gradients, int) and not isinstance(gradients, bool) and gradients >= 1:
        return gradients
    raise ValueError(
        "`gradients` is True (the two gradients on the first 256 training rows of each member's fold), False, "
        f"or a number of rows (≥ 1). Received: gradients={gradients!r}"
    )
